"""The agencies' publisher SDK (kafka-python): validate, key, sign and send events, with a
durable spool for when Kafka is unreachable."""
