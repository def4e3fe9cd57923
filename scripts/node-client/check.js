// Drives a running sealpost with SendGrid's official Node client, exactly as
// the README shows: setApiKey first, then the base URL.
//   SENDGRID_API_KEY=SG... SEALPOST_URL=http://127.0.0.1:8080/ node check.js
const assert = require('node:assert/strict');
const client = require('@sendgrid/client');
const sgMail = require('@sendgrid/mail');

client.setApiKey(process.env.SENDGRID_API_KEY);
client.setDefaultRequest('baseUrl', process.env.SEALPOST_URL);

(async () => {
  const url = '/v3/user/settings/enforced_tls';
  let [res, body] = await client.request({ url, method: 'GET' });
  assert.equal(res.statusCode, 200);
  assert.deepEqual(body, { require_tls: false, require_valid_cert: false, version: 1.1 });

  [res, body] = await client.request({ url, method: 'PATCH', body: { require_valid_cert: true, version: 1.3 } });
  assert.equal(res.statusCode, 200);
  assert.deepEqual(body, { require_tls: false, require_valid_cert: true, version: 1.3 });
  assert.match(res.headers['x-ratelimit-reset'], /^\d+$/);

  [res] = await client.request({
    url: '/v3/subusers', method: 'POST',
    body: { username: 'node-team', email: 'node@example.com', password: 'n0de-Pass', ips: [] },
  });
  assert.equal(res.statusCode, 200);
  [res, body] = await client.request({ url, method: 'PATCH', headers: { 'on-behalf-of': 'node-team' }, body: { require_tls: true } });
  assert.equal(res.statusCode, 200);
  assert.deepEqual(body, { require_tls: true, require_valid_cert: false, version: 1.1 });
  [, body] = await client.request({ url, method: 'GET' });
  assert.deepEqual(body, { require_tls: false, require_valid_cert: true, version: 1.3 }, 'the parent must be unchanged');

  await assert.rejects(client.request({ url, method: 'PATCH', body: { version: 1.4 } }), (err) => {
    assert.equal(err.code, 400);
    assert.deepEqual(err.response.body, { errors: [{ field: 'version', message: 'version must be one of 1.1, 1.2, 1.3' }] });
    return true;
  });
  // @sendgrid/mail on the same client, so on the same base URL.
  sgMail.setClient(client);
  const msg = { to: 'someone@example.test', from: 'me@example.test', subject: 'hello', text: 'hello', html: '<p>hello</p>' };
  [res] = await sgMail.send(msg);
  assert.equal(res.statusCode, 202);
  assert.match(res.headers['x-message-id'], /^[A-Za-z0-9_-]{22}$/);
  const xMessageID = res.headers['x-message-id'];
  // The Email Activity API, through the client's own query string handling.
  [res, body] = await client.request({ url: '/v3/messages', method: 'GET', qs: { limit: 10, query: 'to_email="someone@example.test"' } });
  assert.equal(res.statusCode, 200);
  assert.equal(body.messages.length, 1);
  assert.equal(body.messages[0].to_email, 'someone@example.test');
  assert.ok(body.messages[0].msg_id.startsWith(xMessageID), 'msg_id starts with the X-Message-Id');
  [res, body] = await client.request({ url: `/v3/messages/${body.messages[0].msg_id}`, method: 'GET' });
  assert.equal(res.statusCode, 200);
  assert.equal(body.subject, 'hello');
  assert.ok(body.events.some((e) => e.event_name === 'processed'), 'the detail lists the processed event');
  [res] = await sgMail.send({ ...msg, mailSettings: { sandboxMode: { enable: true } } });
  assert.equal(res.statusCode, 200, 'a sandbox send is validated, not sent');
  await assert.rejects(sgMail.send({ ...msg, from: 'not an address' }), (err) => {
    assert.equal(err.code, 400);
    assert.equal(err.response.body.errors[0].field, 'from.email');
    return true;
  });
  console.log('node client: 10 checks passed');
})().catch((err) => { console.error(err); process.exit(1); });
