-- A recipient whose account was disabled before it was delivered ends
-- 'dropped'. Every stored state is still allowed, so validating the new
-- constraint cannot fail.
ALTER TABLE recipients DROP CONSTRAINT recipients_state_check;
ALTER TABLE recipients ADD CONSTRAINT recipients_state_check
	CHECK (state IN ('queued', 'delivered', 'bounced', 'blocked', 'dropped')) NOT VALID;
ALTER TABLE recipients VALIDATE CONSTRAINT recipients_state_check;
