// Sends one identify and track through @rudderstack/rudder-sdk-node 3.x to the capture
// server at http://127.0.0.1:$PORT, then flushes (one gzip /v1/batch request).
const Analytics = require('@rudderstack/rudder-sdk-node')

async function main() {
  const client = new Analytics('wk_fixture', {
    dataPlaneUrl: `http://127.0.0.1:${process.env.PORT}`,
    flushAt: 20,
    flushInterval: 60000,
  })
  client.identify({ userId: 'rudder-user-1', traits: { email: 'rudder@example.com', plan: 'team', ltv: 80 } })
  client.track({ userId: 'rudder-user-1', event: 'Order Completed', properties: { revenue: 19.99 } })
  await client.flush()
}

main().catch((error) => { console.error(error); process.exit(1) })
