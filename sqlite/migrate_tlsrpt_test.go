package sqlite_test

import (
	"reflect"
	"testing"

	"github.com/sealpost/sealpost"
)

// The migration that counts TLS report sessions per policy and sending IP
// keeps the counts made before it, with no policy and no sending IP.
func TestTLSRPTPoliciesMigrationKeepsCounts(t *testing.T) {
	ctx := t.Context()
	path, db, accts := openWithAccounts(t, "alice")
	a := accts[0]
	db.Close()
	raw := inspect(t, path)
	// Back to the schema before the migration, with a count of then.
	for _, stmt := range []string{
		`DELETE FROM schema_migrations WHERE version = '0018_tlsrpt_policies_sends'`,
		`DROP TABLE tlsrpt_counts`,
		`DROP TABLE tlsrpt_sends`,
		`ALTER TABLE mta_sts_policies DROP COLUMN policy_text`,
		`CREATE TABLE tlsrpt_counts (account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE, policy_domain TEXT NOT NULL,
			day BIGINT NOT NULL, policy_type TEXT NOT NULL, mx_host TEXT NOT NULL, result_type TEXT NOT NULL, receiving_ip TEXT NOT NULL,
			sessions BIGINT NOT NULL, PRIMARY KEY (day, policy_domain, policy_type, mx_host, result_type, receiving_ip, account_id))`,
		`CREATE INDEX tlsrpt_counts_account ON tlsrpt_counts (account_id, day)`,
		`INSERT INTO tlsrpt_counts VALUES (1, 'rpt.example', 20000, 'sts', 'mx.rpt.example', 'certificate-expired', '192.0.2.1', 7)`,
	} {
		if _, err := raw.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	raw.Close()

	db = openAt(t, path)
	got, err := db.TLSRPTCounts(ctx, 20000, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []sealpost.TLSRPTCount{{AccountID: a.ID, PolicyDomain: "rpt.example", Day: 20000, PolicyType: "sts", MXHost: "mx.rpt.example",
		ResultType: "certificate-expired", ReceivingIP: "192.0.2.1", Sessions: 7}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("counts after the migration = %+v, want %+v", got, want)
	}
}
