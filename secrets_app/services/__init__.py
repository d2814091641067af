"""Every write: one module per domain, keyword-only arguments, each write audited and all or nothing
(as Zulip's `zerver/actions/`)."""
