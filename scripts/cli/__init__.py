"""`paybridge`: run PayBridge for a company — tenants, API keys, secrets, webhooks — against the local stack
(`--stage local`: the local tenants file) or a deployed stage (`--stage prod`: the `paybridge-prod` table)."""
