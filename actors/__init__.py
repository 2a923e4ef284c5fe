"""Long-lived asyncio actors on JetStream durable consumers, and the runtime that runs them."""
