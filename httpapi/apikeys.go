package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"

	"github.com/sealpost/sealpost"
)

func (s *Server) getScopes(_ context.Context, _ *http.Request, c *call) (int, []byte, error) {
	// The calling key's scopes, even under on-behalf-of: they are what
	// decides what the call may do.
	return jsonResponse(http.StatusOK, struct {
		Scopes []string `json:"scopes"`
	}{nonNil(c.principal.Key.Scopes)})
}

type apiKeySummary struct {
	Name     string `json:"name"`
	APIKeyID string `json:"api_key_id"`
}

type apiKeyDetail struct {
	Name     string   `json:"name"`
	APIKeyID string   `json:"api_key_id"`
	Scopes   []string `json:"scopes"`
}

func (s *Server) createAPIKey(ctx context.Context, _ *http.Request, c *call) (int, []byte, error) {
	o, err := parseObject(c.body)
	if err != nil {
		return 0, nil, err
	}
	name, _ := o.checkedStr("name", true, sealpost.ValidateKeyName)
	requested, scopesPresent := o.strs("scopes")
	var scopes []string
	if !scopesPresent {
		// No list means full access, which can be no more than the acting
		// account may hold and the calling key itself holds.
		scopes = intersect(sealpost.FullAccessScopes(c.acting.Kind), c.principal.Key.Scopes)
	} else if requested != nil {
		scopes, err = sealpost.NormalizeScopes("scopes", requested, c.acting.Kind, c.principal.Key.Scopes)
		if err != nil {
			*o.problems = append(*o.problems, sealpost.ErrorFields(err)...)
		}
	}
	if err := o.err(); err != nil {
		return 0, nil, err
	}
	key, token, err := sealpost.NewAPIKey(c.acting.ID, name, scopes)
	if err != nil {
		return 0, nil, err
	}
	if err := s.store.CreateAPIKey(ctx, key); err != nil {
		return 0, nil, fmt.Errorf("creating API key for account %d: %w", c.acting.ID, err)
	}
	return jsonResponse(http.StatusCreated, struct {
		APIKey   string   `json:"api_key"`
		APIKeyID string   `json:"api_key_id"`
		Name     string   `json:"name"`
		Scopes   []string `json:"scopes"`
	}{token, key.ID, key.Name, nonNil(key.Scopes)})
}

func (s *Server) listAPIKeys(ctx context.Context, _ *http.Request, c *call) (int, []byte, error) {
	keys, err := s.store.APIKeys(ctx, c.acting.ID)
	if err != nil {
		return 0, nil, fmt.Errorf("listing API keys of account %d: %w", c.acting.ID, err)
	}
	result := make([]apiKeySummary, 0, len(keys))
	for _, k := range keys {
		result = append(result, apiKeySummary{Name: k.Name, APIKeyID: k.ID})
	}
	return jsonResponse(http.StatusOK, struct {
		Result []apiKeySummary `json:"result"`
	}{result})
}

func (s *Server) getAPIKey(ctx context.Context, r *http.Request, c *call) (int, []byte, error) {
	id, err := keyID(r)
	if err != nil {
		return 0, nil, err
	}
	key, err := s.store.APIKey(ctx, c.acting.ID, id)
	if err != nil {
		return 0, nil, keyError(err, c)
	}
	// SendGrid's spec wraps the one key in a one-element array.
	return jsonResponse(http.StatusOK, struct {
		Result []apiKeyDetail `json:"result"`
	}{[]apiKeyDetail{{Name: key.Name, APIKeyID: key.ID, Scopes: nonNil(key.Scopes)}}})
}

func (s *Server) putAPIKey(ctx context.Context, r *http.Request, c *call) (int, []byte, error) {
	o, err := parseObject(c.body)
	if err != nil {
		return 0, nil, err
	}
	name, _ := o.checkedStr("name", true, sealpost.ValidateKeyName)
	upd := sealpost.APIKeyUpdate{Name: &name, Within: callerScopes(c)}
	// Absent scopes keep the key's scopes, as in SendGrid's spec where only
	// the name is required.
	if requested, ok := o.strs("scopes"); ok && requested != nil {
		scopes, err := sealpost.NormalizeScopes("scopes", requested, c.acting.Kind, c.principal.Key.Scopes)
		if err != nil {
			*o.problems = append(*o.problems, sealpost.ErrorFields(err)...)
		}
		upd.Scopes = scopes
	}
	if err := o.err(); err != nil {
		return 0, nil, err
	}
	id, err := keyID(r)
	if err != nil {
		return 0, nil, err
	}
	key, err := s.store.UpdateAPIKey(ctx, c.acting.ID, id, upd)
	if err != nil {
		return 0, nil, keyError(err, c)
	}
	return jsonResponse(http.StatusOK, struct {
		APIKeyID string   `json:"api_key_id"`
		Name     string   `json:"name"`
		Scopes   []string `json:"scopes"`
	}{key.ID, key.Name, nonNil(key.Scopes)})
}

func (s *Server) patchAPIKey(ctx context.Context, r *http.Request, c *call) (int, []byte, error) {
	o, err := parseObject(c.body)
	if err != nil {
		return 0, nil, err
	}
	name, _ := o.checkedStr("name", true, sealpost.ValidateKeyName)
	if err := o.err(); err != nil {
		return 0, nil, err
	}
	id, err := keyID(r)
	if err != nil {
		return 0, nil, err
	}
	key, err := s.store.UpdateAPIKey(ctx, c.acting.ID, id, sealpost.APIKeyUpdate{Name: &name, Within: callerScopes(c)})
	if err != nil {
		return 0, nil, keyError(err, c)
	}
	return jsonResponse(http.StatusOK, struct {
		APIKeyID string `json:"api_key_id"`
		Name     string `json:"name"`
	}{key.ID, key.Name})
}

func (s *Server) deleteAPIKey(ctx context.Context, r *http.Request, c *call) (int, []byte, error) {
	id, err := keyID(r)
	if err != nil {
		return 0, nil, err
	}
	if err := s.store.DeleteAPIKey(ctx, c.acting.ID, id, callerScopes(c)); err != nil {
		return 0, nil, keyError(err, c)
	}
	return http.StatusNoContent, nil, nil
}

// callerScopes bounds which keys a call may change or delete: only keys
// whose every scope the caller holds, so that a narrower key can neither
// strip a broader one (locking its owner out) nor revoke it. The caller is
// the key that authenticated, also under on-behalf-of: a parent's key
// acting for a subuser may change the subuser's keys only within its own
// scopes, the same bound NormalizeScopes puts on what it may grant. The
// result is never nil, so the store always applies the guard.
func callerScopes(c *call) []string {
	return nonNil(c.principal.Key.Scopes)
}

// keyID returns the path's key id, or errNotFound when it cannot be one:
// such an id is not looked up (a store may refuse its bytes, PostgreSQL
// does NUL and invalid UTF-8) but is simply not found.
func keyID(r *http.Request) (string, error) {
	id := r.PathValue("api_key_id")
	if len(id) > 64 {
		return "", errNotFound
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return "", errNotFound
		}
	}
	return id, nil
}

// keyError keeps a store's not-found as the fixed 404 (another account's
// key id must look exactly like a missing one) and wraps anything else.
func keyError(err error, c *call) error {
	if sealpost.ErrorCode(err) == sealpost.ENOTFOUND {
		return errNotFound
	}
	return fmt.Errorf("API key of account %d: %w", c.acting.ID, err)
}

func intersect(a, b []string) []string {
	out := make([]string, 0, len(a))
	for _, s := range a {
		if slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// jsonResponse encodes v as a status's body.
func jsonResponse(status int, v any) (int, []byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, nil, fmt.Errorf("encoding response: %w", err)
	}
	return status, b, nil
}
