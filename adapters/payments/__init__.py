"""Payment providers behind core.ports.PaymentProvider."""
