"""The edge where zeroqueue meets confluent-kafka: client settings, logging, error text."""
