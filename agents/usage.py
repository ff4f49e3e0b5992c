"""Where a reply carries the model spend of the request that produced it."""

# Key in the reply message's metadata: {model: {"inputTokens", "outputTokens", "cost"}}.
# Durable task records copy it to their metadata as "usage".
USAGE_KEY = "hivewire.usage"
