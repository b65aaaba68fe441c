"""Persistence behind small interfaces (DynamoDB for real; the tests may use the same code on moto)."""
