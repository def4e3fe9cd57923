package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sealpost/sealpost"
)

const pathWebhookPosts = "/v3/user/webhooks/event/posts"

type postsAnswer struct {
	Posts []struct {
		At         time.Time `json:"at"`
		Host       string    `json:"host"`
		Events     int       `json:"events"`
		Status     *int      `json:"status"`
		Error      string    `json:"error"`
		DurationMS int64     `json:"duration_ms"`
		Test       bool      `json:"test"`
	} `json:"posts"`
}

// TestWebhookPosts: the acting account's recorded posts, newest first, the
// test posts among them; a failed test post is recorded with the API's one
// answer and no status.
func TestWebhookPosts(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) sealpost.Store) {
		e := newEnv(t, open, withSigner)
		p := e.user("parent")
		child := e.subuser(p, "child")
		token := e.key(p)
		readOnly := e.key(p, sealpost.ScopeEventWebhookRead)
		list := func(what, obo, query string) postsAnswer {
			t.Helper()
			res := e.do(request{method: http.MethodGet, path: pathWebhookPosts + query, token: readOnly, obo: obo})
			var a postsAnswer
			if res.status != http.StatusOK || json.Unmarshal([]byte(res.body), &a) != nil {
				t.Fatalf("%s: %d %s", what, res.status, res.body)
			}
			return a
		}
		e.do(request{method: http.MethodGet, path: pathWebhookPosts, token: readOnly}).
			want(t, "none yet", http.StatusOK, `{"posts":[]}`)

		ok := newReceiver(t, http.StatusNoContent)
		failing := newReceiver(t, http.StatusInternalServerError)
		e.do(request{method: http.MethodPost, path: pathWebhookTest, token: token, obo: "child", body: `{"url":"` + ok.URL + `/hook?token=s3cret"}`}).
			want(t, "test on behalf of the subuser", http.StatusNoContent, "")
		e.do(request{method: http.MethodPost, path: pathWebhookTest, token: token, obo: "child", body: `{"url":"` + failing.URL + `"}`}).
			want(t, "failing test", http.StatusBadRequest, `{"errors":[{"field":"url","message":"the test post to url failed"}]}`)

		if got := list("parent's own", "", ""); len(got.Posts) != 0 {
			t.Errorf("the parent's history holds the subuser's posts: %+v", got)
		}
		got := list("on behalf of the subuser", "child", "")
		if len(got.Posts) != 2 {
			t.Fatalf("subuser's history: %+v", got)
		}
		failed, taken := got.Posts[0], got.Posts[1]
		if failed.Status != nil || failed.Error != "the test post failed" || !failed.Test ||
			failed.Host != strings.TrimPrefix(failing.URL, "http://") {
			t.Errorf("failed test post recorded as %+v", failed)
		}
		if taken.Status == nil || *taken.Status != http.StatusNoContent || taken.Error != "" || !taken.Test ||
			taken.Events != 1 || taken.Host != strings.TrimPrefix(ok.URL, "http://") || time.Since(taken.At) > time.Hour {
			t.Errorf("test post taken recorded as %+v", taken)
		}
		if got := list("limit 1", "child", "?limit=1"); len(got.Posts) != 1 || got.Posts[0].Status != nil {
			t.Errorf("limit=1: %+v; want the newest only", got)
		}
		childView := e.do(request{method: http.MethodGet, path: pathWebhookPosts, token: e.key(child, sealpost.ScopeEventWebhookRead)})
		if childView.status != http.StatusOK || !strings.Contains(childView.body, `"the test post failed"`) {
			t.Errorf("the subuser's own view: %d %s", childView.status, childView.body)
		}

		for _, q := range []string{"?limit=0", "?limit=101", "?limit=x"} {
			e.do(request{method: http.MethodGet, path: pathWebhookPosts + q, token: readOnly}).want(t, q, http.StatusBadRequest,
				`{"errors":[{"field":"limit","message":"limit must be an integer from 1 to 100"}]}`)
		}
		e.do(request{method: http.MethodGet, path: pathWebhookPosts, token: e.key(p, sealpost.ScopeMailSend)}).
			want(t, "without the scope", http.StatusForbidden, wantForbidden)
	})
}
