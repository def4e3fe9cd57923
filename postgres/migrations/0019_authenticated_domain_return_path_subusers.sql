-- The return path of authenticated domains: custom_spf is SendGrid's
-- setting of that name; return_path_valid records whether the return
-- path's MX and SPF records were last found as shown, which signed mail's
-- envelope sender waits for.
ALTER TABLE authenticated_domains ADD COLUMN custom_spf BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE authenticated_domains ADD COLUMN return_path_valid BOOLEAN NOT NULL DEFAULT false;
-- Domains made before return paths get one, as a new domain without a
-- subdomain does: em and four digits.
UPDATE authenticated_domains SET subdomain = 'em' || lpad((id % 10000)::text, 4, '0') WHERE subdomain = '';

-- A parent's authenticated domain assigned to one of its subusers
-- (SendGrid's /v3/whitelabel/domains/{id}/subuser): one per subuser.
CREATE TABLE authenticated_domain_subusers (
	subuser_id BIGINT PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
	domain_id  BIGINT NOT NULL REFERENCES authenticated_domains (id) ON DELETE CASCADE
);
-- Serves the cascade from a deleted domain.
CREATE INDEX authenticated_domain_subusers_domain ON authenticated_domain_subusers (domain_id);
