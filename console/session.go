package console

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"unicode"

	"github.com/sealpost/sealpost"
)

const (
	sessionCookie = "sealpost_console"
	actingCookie  = "sealpost_console_acting"
	tokenBytes    = 32
)

// session is a signed-in browser: its token (the cookie), the API key it
// signed in with, and the account it acts as.
type session struct {
	token  []byte
	key    string
	acting string
}

// derive is HMAC-SHA256(token, label): the token alone yields the store's
// id, the key that seals the API key, and the CSRF token, none revealing
// another.
func derive(token []byte, label string) []byte {
	m := hmac.New(sha256.New, token)
	m.Write([]byte(label))
	return m.Sum(nil)
}

func sessionID(token []byte) []byte {
	sum := sha256.Sum256(token)
	return sum[:]
}

func sealKey(token []byte, apiKey string) ([]byte, error) {
	aead, err := sessionAEAD(token)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, []byte(apiKey), sessionID(token)), nil
}

func openKey(token, sealed []byte) (string, error) {
	aead, err := sessionAEAD(token)
	if err != nil {
		return "", err
	}
	if len(sealed) < aead.NonceSize() {
		return "", errors.New("sealed key too short")
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], sessionID(token))
	return string(plain), err
}

func sessionAEAD(token []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(derive(token, "sealpost console: API key seal"))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func (s *session) csrf() string {
	return base64.RawURLEncoding.EncodeToString(derive(s.token, "sealpost console: CSRF"))
}

func (s *session) csrfOK(r *http.Request) bool {
	return hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(s.csrf()))
}

var errNoSession = errors.New("not signed in")

// isPage reports whether p is a page switching accounts may return to.
func isPage(p string) bool {
	switch p {
	case "/console/tls", "/console/activity", "/console/recipients", "/console/webhook":
		return true
	}
	return false
}

// session returns the request's session, errNoSession when it has none.
func (c *Console) session(r *http.Request) (*session, error) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, errNoSession
	}
	token, err := base64.RawURLEncoding.DecodeString(ck.Value)
	if err != nil || len(token) != tokenBytes {
		return nil, errNoSession
	}
	stored, err := c.sessions.ConsoleSession(r.Context(), sessionID(token), c.now())
	if err != nil {
		if sealpost.ErrorCode(err) == sealpost.ENOTFOUND {
			return nil, errNoSession
		}
		return nil, err
	}
	key, err := openKey(token, stored.SealedKey)
	if err != nil {
		return nil, errNoSession
	}
	s := &session{token: token, key: key}
	if ck, err := r.Cookie(actingCookie); err == nil && validActing(ck.Value) {
		s.acting = ck.Value
	}
	return s, nil
}

// validActing keeps what goes into the On-Behalf-Of header printable; the
// API decides whether the account may be acted as.
func validActing(v string) bool {
	if v == "" || len(v) > 256 {
		return false
	}
	for _, r := range v {
		if r > unicode.MaxASCII || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

func (c *Console) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     Prefix,
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   servedOverTLS(r),
		SameSite: http.SameSiteStrictMode,
	})
}

// servedOverTLS reports whether the browser reached the console over TLS,
// directly or through a proxy that terminated it. A forged header only
// makes the forger's own cookie Secure, which a plain-HTTP browser then
// does not send back.
func servedOverTLS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// signedIn serves h to signed-in browsers, after checking the CSRF token
// of a POST; others are sent to sign in.
func (c *Console) signedIn(h func(w http.ResponseWriter, r *http.Request, s *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := c.session(r)
		if err != nil {
			if !errors.Is(err, errNoSession) {
				c.log.ErrorContext(r.Context(), "reading console session", "err", err)
				http.Error(w, "service unavailable", http.StatusServiceUnavailable)
				return
			}
			if r.Method != http.MethodGet {
				http.Error(w, "not signed in", http.StatusForbidden)
				return
			}
			http.Redirect(w, r, "/console/signin", http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
			if err := r.ParseForm(); err != nil {
				http.Error(w, "bad form", http.StatusBadRequest)
				return
			}
			if !s.csrfOK(r) {
				http.Error(w, "missing or wrong CSRF token", http.StatusForbidden)
				return
			}
		}
		h(w, r, s)
	}
}

func (c *Console) signInPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "signin", page{Title: "Sign in"})
}

// signIn checks the key against the API (GET /v3/scopes needs no scope)
// and starts a session. The key is read from the form body only.
func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	key := strings.TrimSpace(r.PostFormValue("api_key"))
	key = strings.TrimPrefix(key, "Bearer ")
	if key == "" {
		c.render(w, r, http.StatusBadRequest, "signin", page{Title: "Sign in", Error: "Enter an API key."})
		return
	}
	token := make([]byte, tokenBytes)
	if _, err := rand.Read(token); err != nil {
		c.log.ErrorContext(r.Context(), "console session token", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	s := &session{token: token, key: key}
	if err := c.call(r.Context(), r, s, http.MethodGet, "/v3/scopes", nil, nil); err != nil {
		c.render(w, r, statusOf(err), "signin", page{Title: "Sign in", Error: "Sign-in failed: " + errorText(err)})
		return
	}
	sealed, err := sealKey(token, key)
	if err == nil {
		now := c.now()
		err = c.sessions.CreateConsoleSession(r.Context(), sealpost.ConsoleSession{
			ID: sessionID(token), SealedKey: sealed, ExpiresAt: now.Add(c.ttl)}, now)
	}
	if err != nil {
		c.log.ErrorContext(r.Context(), "creating console session", "err", err)
		c.render(w, r, http.StatusServiceUnavailable, "signin", page{Title: "Sign in", Error: "Sign-in failed: the database did not answer."})
		return
	}
	c.setCookie(w, r, sessionCookie, base64.RawURLEncoding.EncodeToString(token), int(c.ttl.Seconds()))
	c.setCookie(w, r, actingCookie, "", -1)
	http.Redirect(w, r, "/console/tls", http.StatusSeeOther)
}

func (c *Console) signOut(w http.ResponseWriter, r *http.Request, s *session) {
	if err := c.sessions.DeleteConsoleSession(r.Context(), sessionID(s.token)); err != nil {
		c.log.ErrorContext(r.Context(), "ending console session", "err", err)
		http.Error(w, "service unavailable", http.StatusServiceUnavailable)
		return
	}
	c.setCookie(w, r, sessionCookie, "", -1)
	c.setCookie(w, r, actingCookie, "", -1)
	http.Redirect(w, r, "/console/signin", http.StatusSeeOther)
}

// switchAccount acts as a subuser or customer account from now on, once
// the API has accepted the on-behalf-of for this key (the same check every
// later call repeats).
func (c *Console) switchAccount(w http.ResponseWriter, r *http.Request, s *session) {
	acting := strings.TrimSpace(r.PostFormValue("on_behalf_of"))
	// Back to one of the console's pages only: never a redirect elsewhere.
	back := r.PostFormValue("back")
	if !isPage(back) {
		back = "/console/tls"
	}
	if acting == "" {
		c.setCookie(w, r, actingCookie, "", -1)
		http.Redirect(w, r, back, http.StatusSeeOther)
		return
	}
	if !validActing(acting) {
		c.render(w, r, http.StatusBadRequest, "error", page{Title: "Switch account", CSRF: s.csrf(), Acting: s.acting, Error: "That is not an account name."})
		return
	}
	try := &session{token: s.token, key: s.key, acting: acting}
	if err := c.call(r.Context(), r, try, http.MethodGet, "/v3/scopes", nil, nil); err != nil {
		c.render(w, r, statusOf(err), "error", page{Title: "Switch account", CSRF: s.csrf(), Acting: s.acting,
			Error: "Cannot act as " + acting + ": " + errorText(err)})
		return
	}
	c.setCookie(w, r, actingCookie, acting, int(c.ttl.Seconds()))
	http.Redirect(w, r, back, http.StatusSeeOther)
}
