"""Redis implementation of the `PlainCodeStore` port, in the key layout older consumers read."""

from adapters.redis.connection import RedisClient
from adapters.redis.errors import unavailable_errors
from domain.code import VerificationCode


class RedisPlainCodeStore:
    """Stores each plain code as a string under the bare verification id, without a prefix.

    Downstream consumers of the older contract read the key `<verification id>` and
    expect the code as its value, so this layout must not change. Such a key may clash
    with a key of another service in the same Redis database.
    """

    def __init__(self, client: RedisClient) -> None:
        self._client = client

    async def put(self, verification_id: str, code: VerificationCode, ttl_seconds: int) -> None:
        """Store the plain `code` under `verification_id` for `ttl_seconds`, replacing any value.

        Raises `ValueError` for a TTL below 1 second and `StoreUnavailable`.
        """
        if ttl_seconds < 1:
            raise ValueError(
                f"invalid ttl_seconds {ttl_seconds} for the plain code of verification "
                f"{verification_id!r}: use 1 or more seconds"
            )
        with unavailable_errors("SET", verification_id):
            await self._client.set(verification_id, code.value, ex=ttl_seconds)

    async def delete(self, verification_id: str) -> None:
        """Delete the plain code of `verification_id`, if any. Raises `StoreUnavailable`."""
        with unavailable_errors("DEL", verification_id):
            await self._client.delete(verification_id)
