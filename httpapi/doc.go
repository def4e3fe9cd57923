// Package httpapi serves sealpost's SendGrid v3 HTTP surface. Official
// SendGrid clients work against it by changing only their base URL, so
// statuses, headers and error bodies follow SendGrid byte for byte.
//
// Routes:
//
//	GET, PATCH         /v3/user/settings/enforced_tls
//	GET                /v3/user/settings/enforced_tls/preview (sealpost's own)
//	GET                /v3/scopes
//	GET, POST          /v3/api_keys
//	GET, PUT, PATCH,
//	DELETE             /v3/api_keys/{api_key_id}
//	GET, POST          /v3/subusers
//	PATCH, DELETE      /v3/subusers/{subuser_name}
//	GET, POST          /v3/partners/accounts
//	POST               /v3/mail/send
//	GET, PATCH         /v3/user/webhooks/event/settings
//	GET, PATCH         /v3/user/webhooks/event/settings/signed
//	GET                /v3/user/webhooks/event/posts (ours)
//	POST               /v3/user/webhooks/event/test
//	GET                /healthz, /readyz, /metrics (no authentication)
//
// Every request goes through the same steps, in this order, and stops at
// the first that fails: route (404), method (405, with Allow), the
// Authorization header (401), the key's rate limit (429; mail send is not
// rate limited and carries no X-RateLimit-* headers), the scope the route
// needs on the calling key (403), the on-behalf-of header (403 for a
// key of a subuser or customer account, 404 naming the field for any name
// that is not the caller's own subuser or customer account, 400 when it is
// malformed), the body (413 over 64 KiB, or over Config.MaxMailBytes, 30 MB
// by default, for mail send; read whole before anything is done), and then
// the handler (400 listing every problem). Errors carrying
// a sealpost error code become a status and body in one place,
// errorResponse.
//
// Choices SendGrid does not document, made here:
//
//   - A PATCH of the Enforced TLS setting is a merge: fields present replace,
//     absent fields keep their value, unknown fields are ignored, and any
//     problem leaves the setting unchanged. null is a wrong type, not "unset".
//   - GET /v3/scopes returns the calling key's scopes, also under
//     on-behalf-of: they decide what the call may do.
//   - A key created without scopes gets every scope the acting account's
//     kind may hold that the calling key also holds. PUT without scopes
//     keeps the key's scopes.
//   - Subusers and customer accounts are only owned by top-level accounts;
//     a request acting as anything else gets 403 on those routes.
//   - POST /v3/subusers takes password and ips only to type-check them. A
//     duplicate username is a 400 on username. GET /v3/subusers lists every
//     subuser unless limit (1 or more) is given.
//   - Paths that are not clean (/v3//scopes) are unknown routes, not
//     redirects.
//   - Mail send answers 202 and its X-Message-Id only once every message
//     and its processed events are stored; a store failure is a 500 or 503
//     with no X-Message-Id and nothing stored.
//   - on-behalf-of does not apply to mail send, as on SendGrid, which
//     ignores it there: mail is always sent as the key's own account, whose
//     Enforced TLS setting governs its delivery. A subuser sends its mail
//     with a key of its own.
//   - PATCH /v3/user/webhooks/event/settings is a merge like the Enforced
//     TLS one; enabling a webhook that has no URL, a URL that is not an
//     absolute http or https URL, and any wrong type are 400s naming the
//     field, and change nothing.
//   - PATCH /v3/user/webhooks/event/settings/signed requires "enabled", a
//     boolean. Enabling keeps a key already stored, so receivers keep
//     verifying with the public key they have; disabling forgets the key,
//     and enabling again makes a new one.
//   - POST /v3/user/webhooks/event/test posts a sample event, signed when
//     signing is on. When the receiver does not answer 2xx (or cannot be
//     reached within 10 s) the answer is a 400 on url, "the test post to
//     url failed"; the cause is logged, not shown. The test is recorded in
//     the account's posts, a failed one with that answer and no status.
//   - GET /v3/user/webhooks/event/posts lists the account's last posts
//     (real and test), newest first, from the last 100 kept.
//   - Metrics label the route with its pattern, "unmatched" for unknown
//     paths, and the method with its name or "other".
package httpapi
