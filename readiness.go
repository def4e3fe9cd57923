package sealpost

import (
	"context"
	"time"
)

// HostObservation is what one delivery attempt or one probe learned of the
// TLS of one MX host of a recipient domain, for one account. The registry
// of recipient domains (what the readiness preview judges policies by) is
// built from these.
type HostObservation struct {
	AccountID int64
	Domain    string // lower case, as Recipient.Domain
	MXHost    string
	At        time.Time
	// Facts as delivery records them; for a probe, Version is the highest
	// version the host accepted.
	Facts TLSFacts
	// Recipients is how many recipients the attempt was for; 0 for a probe.
	Recipients int
}

// TLSRegistryService keeps, per account and recipient domain, the latest
// TLS facts per MX host and a summary of them. Delivery records its
// observations with the attempt's outcome (DeliveryCompletion); a probe
// records its own through RecordObservations.
type TLSRegistryService interface {
	RecordObservations(ctx context.Context, obs []HostObservation) error
}
