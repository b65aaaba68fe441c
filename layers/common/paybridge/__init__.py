"""PayBridge shared package: domain, adapters and storage used by every function."""
