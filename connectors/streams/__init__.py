"""Message-stream sources (Redis Streams, NATS JetStream, RabbitMQ, MQTT): docs/connectors/streams.md."""
