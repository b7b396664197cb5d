// Segment's browser analytics.js (@segment/analytics-next) in Node with a jsdom window:
// loads with CDN settings given inline (no network), the Segment.io destination pointed
// at the capture server (http://127.0.0.1:$PORT/v1) with the batching delivery strategy,
// sends identify, track and page, and waits for the batching dispatcher's flush
// (one POST /v1/b, `Content-Type: text/plain`, writeKey inside the body).
const { JSDOM } = require('jsdom')

const dom = new JSDOM('<!doctype html><html><body></body></html>', { url: 'https://shop.example.com/pricing' })
for (const name of ['window', 'document', 'navigator', 'location', 'localStorage', 'sessionStorage', 'screen', 'HTMLElement']) {
  Object.defineProperty(globalThis, name, { value: dom.window[name], configurable: true, writable: true })
}

const { AnalyticsBrowser } = require('@segment/analytics-next')

async function main() {
  const [analytics] = await AnalyticsBrowser.load(
    {
      writeKey: 'wk_fixture',
      cdnSettings: {
        integrations: {
          'Segment.io': {
            apiKey: 'wk_fixture',
            apiHost: `127.0.0.1:${process.env.PORT}/v1`,
            protocol: 'http',
            deliveryStrategy: { strategy: 'batching', config: { size: 3, timeout: 1000 } },
          },
        },
      },
    },
    { disableClientPersistence: true },
  )
  await analytics.identify('browser-user-1', { email: 'browser@example.com', plan: 'pro', ltv: 300 })
  await analytics.track('Product Viewed', { sku: 'sku-1', price: 9.5 })
  await analytics.page('Pricing')
  await new Promise((resolve) => setTimeout(resolve, 3000))
  process.exit(0)
}

main().catch((error) => { console.error(error); process.exit(1) })
