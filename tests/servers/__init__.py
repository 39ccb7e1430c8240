"""Loopback test servers that speak real protocols (reusable by backend and judge tests).

    from servers import OpenAIServer, by_attempt, rate_limited, server_error
    with OpenAIServer(by_attempt(rate_limited(1), server_error(503), "hello")) as srv:
        ...  # point a client at srv.base_url; inspect srv.requests afterwards
"""

from .openai_server import OpenAIServer
from .protocol import (Answer, Reply, Request, bad_request, by_attempt, drop, error_body, malformed,
                       no_streaming, rate_limited, server_error, slow)
from .toy import ToyModel, token_str, toy_logprob, toy_top

__all__ = ["Answer", "OpenAIServer", "Reply", "Request", "ToyModel", "bad_request", "by_attempt", "drop",
           "error_body", "malformed", "no_streaming", "rate_limited", "server_error", "slow", "token_str",
           "toy_logprob", "toy_top"]
