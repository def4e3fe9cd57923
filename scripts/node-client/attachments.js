// Sends a mail with attachments through a running sealpost with SendGrid's
// official Node client @sendgrid/mail: a binary file and an inline image,
// to two recipients. TestAttachmentsWithOfficialNodeClient runs it and
// checks what reaches its fake MX; scripts/node-client-check.sh runs that.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const sgMail = require('@sendgrid/mail');
const { Attachment } = require('@sendgrid/helpers').classes;

sgMail.setApiKey(process.env.SENDGRID_API_KEY);
sgMail.client.setDefaultRequest('baseUrl', process.env.SEALPOST_URL);

const dir = process.env.ATTACH_DIR;
const cid = process.env.ATTACH_IMAGE_CID;

(async () => {
  const msg = {
    personalizations: [{ to: 'ann@files.test' }, { to: 'bob@files.test' }],
    from: 'sender@sealpost.test',
    subject: 'node client attachments',
    text: 'The files.',
    html: `<p>Logo: <img src="cid:${cid}"></p>`,
    attachments: [
      {
        content: fs.readFileSync(path.join(dir, 'binary')).toString('base64'),
        filename: process.env.ATTACH_BINARY_NAME,
        type: 'application/octet-stream',
        disposition: 'attachment',
      },
      // The helper class turns contentId into content_id.
      new Attachment({
        content: fs.readFileSync(path.join(dir, 'image')).toString('base64'),
        filename: process.env.ATTACH_IMAGE_NAME,
        type: 'image/png',
        disposition: 'inline',
        contentId: cid,
      }),
    ],
  };
  const [res] = await sgMail.send(msg);
  assert.equal(res.statusCode, 202);

  // A plain object is sent as it is, so its contentId never becomes
  // content_id: the inline part is refused rather than sent unreferenced.
  await assert.rejects(
    sgMail.send({ ...msg, attachments: [{ content: 'aGVsbG8=', filename: 'x.png', disposition: 'inline', contentId: 'x' }] }),
    (err) => {
      assert.equal(err.code, 400);
      assert.deepEqual(err.response.body, {
        errors: [{ field: 'attachments.0.content_id', message: 'The content_id is required when the disposition is inline.' }],
      });
      return true;
    },
  );
  console.log('node client attachments: 2 checks passed');
})().catch((err) => { console.error(err, JSON.stringify(err.response && err.response.body)); process.exit(1); });
