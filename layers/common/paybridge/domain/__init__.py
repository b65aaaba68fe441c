"""Pure domain: invoices, money and the lifecycle. No AWS, no HTTP."""
