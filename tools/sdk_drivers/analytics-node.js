// Sends one identify, track and page through @segment/analytics-node to the capture
// server at http://127.0.0.1:$PORT, then flushes (one /v1/batch request).
const { Analytics } = require('@segment/analytics-node')

async function main() {
  const analytics = new Analytics({
    writeKey: 'wk_fixture',
    host: `http://127.0.0.1:${process.env.PORT}`,
    maxEventsInBatch: 15,
    flushInterval: 60000,
  })
  analytics.identify({ userId: 'node-user-1', traits: { email: 'node@example.com', plan: 'pro', ltv: 120.5 } })
  analytics.track({ userId: 'node-user-1', event: 'Order Completed', properties: { revenue: 42.5, currency: 'EUR' } })
  analytics.page({ userId: 'node-user-1', name: 'Pricing', properties: { path: '/pricing' } })
  await analytics.closeAndFlush({ timeout: 10000 })
}

main().catch((error) => { console.error(error); process.exit(1) })
