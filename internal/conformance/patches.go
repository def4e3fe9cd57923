package conformance

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// A patch corrects the loaded copy of one of SendGrid's documents where the
// document itself is wrong or too loose to check against. The files in spec/
// stay as published; every correction is here, with its reason.
type patch func(file string, doc *openapi3.T) error

var patches = []patch{
	routeByPathAlone,
	checkUndocumentedStatuses,
	patchOptionalIDs,
	nullableAsTypeNull,
	provisioning401AsObserved,
	sandboxModeOK,
	activityDetailRequiredAsServed,
	authDomainUpdateAnswersOne,
	domainSPFWithCustomSPFOnly,
}

// routeByPathAlone drops the documents' servers (api.sendgrid.com and its EU
// twin): tests reach sealpost on a loopback address, and an operation is
// the same whatever host serves it.
func routeByPathAlone(_ string, doc *openapi3.T) error {
	doc.Servers = nil
	return nil
}

// genericError is SendGrid's error body as every document in spec/ but
// Account Provisioning's gives it (their ErrorResponse schema), with
// "errors" and each entry's "message" required: SendGrid answers statuses
// its documents leave out (429 everywhere, 413, 405) with it.
const genericError = `{
  "type": "object",
  "required": ["errors"],
  "properties": {
    "errors": {
      "type": "array",
      "minItems": 1,
      "items": {
        "type": "object",
        "required": ["message"],
        "properties": {
          "message": {"type": "string"},
          "field": {"type": ["string", "null"]},
          "help": {"type": ["object", "null"]},
          "error_id": {"type": "string"}
        }
      }
    },
    "id": {"type": "string"}
  }
}`

func genericErrorResponse() (*openapi3.ResponseRef, error) {
	var schema openapi3.Schema
	if err := json.Unmarshal([]byte(genericError), &schema); err != nil {
		return nil, err
	}
	desc := "SendGrid's generic error body"
	return &openapi3.ResponseRef{Value: &openapi3.Response{
		Description: &desc,
		Content:     openapi3.NewContentWithJSONSchema(&schema),
	}}, nil
}

// checkUndocumentedStatuses gives every operation without a default
// response the generic error body as its default. Without it a status the
// document does not list (a 429, say) would pass unchecked; with it such a
// status must carry SendGrid's error body, and an undocumented success
// status fails.
func checkUndocumentedStatuses(_ string, doc *openapi3.T) error {
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			if op.Responses.Default() != nil {
				continue
			}
			def, err := genericErrorResponse()
			if err != nil {
				return err
			}
			op.Responses.Set("default", def)
		}
	}
	return nil
}

// patchOptionalIDs adds the id-less forms of the Event Webhook settings
// operations. SendGrid's document gives GET and PATCH
// /v3/user/webhooks/event/settings[/signed] only with a trailing {id}, but
// the id is optional: without it they act on the account's one (oldest)
// webhook, which is the classic single-webhook API sealpost serves and
// the official clients call. The operations are otherwise the same.
func patchOptionalIDs(file string, doc *openapi3.T) error {
	if file != "tsg_webhooks_v3.json" {
		return nil
	}
	for _, withID := range []string{"/v3/user/webhooks/event/settings/{id}", "/v3/user/webhooks/event/settings/signed/{id}"} {
		from := doc.Paths.Value(withID)
		if from == nil {
			return fmt.Errorf("%s is gone from the document", withID)
		}
		without := strings.TrimSuffix(withID, "/{id}")
		to := doc.Paths.Value(without)
		if to == nil {
			to = &openapi3.PathItem{}
			doc.Paths.Set(without, to)
		}
		for _, method := range []string{"GET", "PATCH"} {
			op := from.GetOperation(method)
			if op == nil {
				return fmt.Errorf("%s %s is gone from the document", method, withID)
			}
			if to.GetOperation(method) != nil {
				return fmt.Errorf("%s %s is now in the document: drop this patch", method, without)
			}
			idless := *op
			idless.OperationID += "WithoutID"
			idless.Parameters = nil
			for _, p := range op.Parameters {
				if p.Value != nil && p.Value.In == openapi3.ParameterInPath {
					continue
				}
				idless.Parameters = append(idless.Parameters, p)
			}
			to.SetOperation(method, &idless)
		}
	}
	return nil
}

// nullableAsTypeNull rewrites OpenAPI 3.0's "nullable": true as a "null"
// type. The documents declare OpenAPI 3.1, whose JSON Schema has no
// nullable keyword, yet still mark fields such as an error's "field"
// nullable the 3.0 way; read as 3.1 they would forbid the null SendGrid
// sends ({"field":null,"message":"authorization required"}).
func nullableAsTypeNull(_ string, doc *openapi3.T) error {
	seen := map[*openapi3.Schema]bool{}
	var visit func(ref *openapi3.SchemaRef)
	visit = func(ref *openapi3.SchemaRef) {
		if ref == nil || ref.Value == nil || seen[ref.Value] {
			return
		}
		s := ref.Value
		seen[s] = true
		if s.Nullable && s.Type != nil && !s.Type.Includes(openapi3.TypeNull) {
			types := append(openapi3.Types{}, *s.Type...)
			types = append(types, openapi3.TypeNull)
			s.Type = &types
		}
		for _, p := range s.Properties {
			visit(p)
		}
		visit(s.Items)
		visit(s.Not)
		visit(s.AdditionalProperties.Schema)
		for _, list := range []openapi3.SchemaRefs{s.AllOf, s.AnyOf, s.OneOf} {
			for _, r := range list {
				visit(r)
			}
		}
	}
	for _, s := range doc.Components.Schemas {
		visit(s)
	}
	visitContent := func(c openapi3.Content) {
		for _, mt := range c {
			visit(mt.Schema)
		}
	}
	for _, r := range doc.Components.Responses {
		if r.Value != nil {
			visitContent(r.Value.Content)
		}
	}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			for _, r := range op.Responses.Map() {
				if r.Value != nil {
					visitContent(r.Value.Content)
				}
			}
		}
	}
	return nil
}

// provisioning401AsObserved makes the Account Provisioning 401 SendGrid's
// generic error body. The document gives it as
// {"errors":[{"message":..,"field":"","error_id":"10-40100"}]}, but
// SendGrid refuses a bad key before the API behind it is reached, and
// every SendGrid 401 clients have published is in the generic form, field
// null and no error_id (sendgrid-php issues 643, 627, 824); none shows the
// document's. sealpost follows what SendGrid is seen to answer.
func provisioning401AsObserved(file string, doc *openapi3.T) error {
	if file != "tsg_account_provisioning_v3.json" {
		return nil
	}
	generic, err := genericErrorResponse()
	if err != nil {
		return err
	}
	n := 0
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			if op.Responses.Status(401) != nil {
				op.Responses.Set("401", generic)
				n++
			}
		}
	}
	if n == 0 {
		return fmt.Errorf("no operation documents a 401 any more: drop this patch")
	}
	return nil
}

// sandboxModeOK adds the 200 mail send answers in sandbox mode. SendGrid's
// Sandbox Mode page says a valid request with mail_settings.sandbox_mode
// enabled gets 200 OK instead of 202, with no body, and the document
// lists only 202.
func sandboxModeOK(file string, doc *openapi3.T) error {
	if file != "tsg_mail_v3.json" {
		return nil
	}
	send := doc.Paths.Value("/v3/mail/send")
	if send == nil || send.Post == nil {
		return fmt.Errorf("POST /v3/mail/send is gone from the document")
	}
	if send.Post.Responses.Status(200) != nil {
		return fmt.Errorf("POST /v3/mail/send now documents 200: drop this patch")
	}
	desc := "Sandbox mode: the request is valid; nothing is sent"
	send.Post.Responses.Set("200", &openapi3.ResponseRef{Value: &openapi3.Response{Description: &desc}})
	return nil
}

// activityDetailRequiredAsServed narrows what the Email Activity message
// detail requires to what every message has. The document requires all
// of its members, among them asm_group_id (an integer from 1: a message
// sent without an unsubscribe group has none), template_id, teammate,
// api_key_id and the IP addresses, and of every event bounce_type,
// http_user_agent and mx_server, which only bounces, opens and clicks, and
// events from an MX, have. The members present are still checked against
// their schemas.
func activityDetailRequiredAsServed(file string, doc *openapi3.T) error {
	if file != "tsg_email_activity_v3.json" {
		return nil
	}
	item := doc.Paths.Value("/v3/messages/{msg_id}")
	if item == nil || item.Get == nil || item.Get.Responses.Status(200) == nil {
		return fmt.Errorf("GET /v3/messages/{msg_id} 200 is gone from the document")
	}
	mt := item.Get.Responses.Status(200).Value.Content.Get("application/json")
	if mt == nil || mt.Schema == nil || mt.Schema.Value == nil {
		return fmt.Errorf("GET /v3/messages/{msg_id} 200 has no JSON schema any more")
	}
	msg := mt.Schema.Value
	events := msg.Properties["events"]
	if events == nil || events.Value == nil || events.Value.Items == nil || events.Value.Items.Value == nil {
		return fmt.Errorf("the message detail has no events array any more")
	}
	msg.Required = []string{"from_email", "msg_id", "subject", "to_email", "status", "categories", "unique_args", "events"}
	events.Value.Items.Value.Required = []string{"event_name", "processed"}
	return nil
}

// authDomainUpdateAnswersOne makes PATCH /v3/whitelabel/domains/{domain_id}
// answer the updated domain, one object, as GET of the same path does. The
// document gives it the list's answer (an array), but clients used against
// SendGrid read one domain from it (trois-six/terraform-provider-sendgrid's
// UpdateDomainAuthentication decodes a single DomainAuthentication).
func authDomainUpdateAnswersOne(file string, doc *openapi3.T) error {
	if file != "tsg_domain_authentication_v3.json" {
		return nil
	}
	item := doc.Paths.Value("/v3/whitelabel/domains/{domain_id}")
	if item == nil || item.Patch == nil || item.Get == nil {
		return fmt.Errorf("GET or PATCH /v3/whitelabel/domains/{domain_id} is gone from the document")
	}
	patch, get := item.Patch.Responses.Status(200), item.Get.Responses.Status(200)
	if patch == nil || get == nil || patch.Value == nil || get.Value == nil {
		return fmt.Errorf("GET or PATCH /v3/whitelabel/domains/{domain_id} documents no 200 any more")
	}
	mt := patch.Value.Content.Get("application/json")
	if mt == nil || mt.Schema == nil || mt.Schema.Value == nil || !mt.Schema.Value.Type.Is(openapi3.TypeArray) {
		return fmt.Errorf("PATCH /v3/whitelabel/domains/{domain_id} no longer answers an array: drop this patch")
	}
	item.Patch.Responses.Set("200", get)
	return nil
}

// domainSPFWithCustomSPFOnly stops requiring dns.domain_spf of
// AuthenticatedDomainSpf, the manual-security form of an authenticated
// domain. The root domain's SPF record is the custom SPF's (the document's
// only example has custom_spf true); without it SendGrid's reference says a
// domain with automatic security off has "2 TXT records and 1 MX record":
// subdomain_spf, dkim and mail_server.
func domainSPFWithCustomSPFOnly(file string, doc *openapi3.T) error {
	if file != "tsg_domain_authentication_v3.json" {
		return nil
	}
	ref := doc.Components.Schemas["AuthenticatedDomainSpf"]
	if ref == nil || ref.Value == nil || ref.Value.Properties["dns"] == nil || ref.Value.Properties["dns"].Value == nil {
		return fmt.Errorf("AuthenticatedDomainSpf has no dns object any more")
	}
	dns := ref.Value.Properties["dns"].Value
	i := slices.Index(dns.Required, "domain_spf")
	if i < 0 {
		return fmt.Errorf("AuthenticatedDomainSpf no longer requires domain_spf: drop this patch")
	}
	dns.Required = slices.Delete(slices.Clone(dns.Required), i, i+1)
	return nil
}
