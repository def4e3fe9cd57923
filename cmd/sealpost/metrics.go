package main

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sealpost/sealpost"
	"github.com/sealpost/sealpost/delivery"
	"github.com/sealpost/sealpost/webhook"
)

// measuredDeliverer counts every recipient's outcome and times attempts.
type measuredDeliverer struct {
	next     delivery.Deliverer
	outcomes *prometheus.CounterVec
	duration prometheus.Histogram
}

func newMeasuredDeliverer(next delivery.Deliverer, reg prometheus.Registerer) *measuredDeliverer {
	d := &measuredDeliverer{
		next: next,
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sealpost_delivery_recipients_total",
			Help: "Recipients' delivery attempt outcomes: delivered, deferred, bounced or blocked (by the Enforced TLS policy), and whether TLS was used.",
		}, []string{"outcome", "tls"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sealpost_delivery_attempt_duration_seconds",
			Help:    "Time of one delivery attempt to one domain, DNS and SMTP included.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
	}
	reg.MustRegister(d.outcomes, d.duration)
	return d
}

func (d *measuredDeliverer) Deliver(ctx context.Context, policy sealpost.EnforcedTLS, env delivery.Envelope) delivery.Result {
	start := time.Now()
	res := d.next.Deliver(ctx, policy, env)
	d.duration.Observe(time.Since(start).Seconds())
	tls := "0"
	if res.TLS.TLS {
		tls = "1"
	}
	for _, r := range res.Recipients {
		d.outcomes.WithLabelValues(r.Status.String(), tls).Inc()
	}
	return res
}

// registerPosterMetrics exposes the Event Webhook poster's counters and
// posts in flight.
func registerPosterMetrics(reg prometheus.Registerer, p *webhook.Poster) {
	counter := func(name, help string, f func(webhook.Stats) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(f(p.Stats())) })
	}
	gauge := func(name, help string, f func(webhook.Stats) int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help},
			func() float64 { return float64(f(p.Stats())) })
	}
	reg.MustRegister(
		counter("sealpost_webhook_posts_total", "Event Webhook posts answered 2xx.", func(s webhook.Stats) int64 { return s.Posts }),
		counter("sealpost_webhook_failed_posts_total", "Event Webhook posts that failed (non-2xx, redirect, network, timeout) and will be retried.", func(s webhook.Stats) int64 { return s.FailedPosts }),
		counter("sealpost_webhook_events_posted_total", "Events delivered to Event Webhooks.", func(s webhook.Stats) int64 { return s.EventsPosted }),
		counter("sealpost_webhook_events_skipped_total", "Queued events not posted because their kind or the webhook was turned off while they waited, or the account is gone (events the webhook does not want when they happen are never queued).", func(s webhook.Stats) int64 { return s.EventsSkipped }),
		gauge("sealpost_webhook_posts_in_flight", "Event Webhook posts in flight on this node (at most --webhook-max-posts).", func(s webhook.Stats) int64 { return s.InFlight }),
		gauge("sealpost_webhook_failing_posts_in_flight", "Event Webhook posts in flight to accounts whose last post failed (at most half of --webhook-max-posts).", func(s webhook.Stats) int64 { return s.FailingInFlight }),
		counter("sealpost_webhook_events_given_up_total", "Events dropped after their webhook failed for 24 hours.", func(s webhook.Stats) int64 { return s.EventsGivenUp }),
	)
}
