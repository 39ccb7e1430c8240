"""``--backend openai``: any OpenAI-compatible server through the official ``openai`` client.

Usage::

    vllm serve ./ckpt/step-1200 --port 8000 &
    sfteval run --backend openai --model ./ckpt/step-1200 --base-url http://127.0.0.1:8000/v1 --suite demo
    sfteval run --backend openai --model gpt-4o-mini --suite demo            # key from $OPENAI_API_KEY

Which endpoint (``-o api=auto|completions|chat``, recorded as the manifest's ``prompt_mode``):

- a tokenizer is known (``--model`` is a local folder, or ``--tokenizer``): sfteval renders the chat
  template itself and sends the token ids to ``/v1/completions`` (``prompt_mode = rendered``), so the
  server scores exactly the tokens the hf and vllm backends score (``-o prompt_as=text`` for servers
  that only take text; they may then add a second BOS);
- otherwise the messages go to ``/v1/chat/completions`` and the server applies its own template
  (``prompt_mode = chat``); prompt log-prob probes are then skipped.

A local ``--model`` folder is matched to the served name via ``/v1/models`` (``-o model_name=`` to say it).

Generation config hygiene: a server fills every sampling parameter a request leaves out from its own
defaults, and vLLM takes them from the checkpoint's ``generation_config.json`` (temperature, top_p,
top_k, repetition_penalty ...). sfteval therefore sends temperature, top_p, max_tokens, seed and stop
with every request, records the parameter sets it sent in ``manifest.backend_settings.sampling_sent``,
and ``-o extra_body='{top_k: -1, repetition_penalty: 1.0}'`` pins server-specific ones (vLLM) too.

Faults: 429/5xx/408, timeouts (``--request-timeout``, per attempt), dropped connections and malformed
bodies are retried (``--max-retries``, exponential backoff with jitter; a ``Retry-After`` in seconds or
as an HTTP date is honoured up to ``-o max_retry_after``). A request that still fails is stored as an
error with its reason; the run exits 3 and ``--resume RUN`` retries only those. 401/403/404 before any
success stop the run at once with one message.

Accounting: streamed answers give time to first token and per-token time; token usage, attempts and
(with ``-o price_per_1k_prompt=... -o price_per_1k_completion=...``) cost go to ``manifest.usage``.

Secrets: the key comes from ``$OPENAI_API_KEY`` or the variable named by ``--api-key-env``; it is never
written to the run folder or logs, and key-like strings are removed from server error messages.

Prompt log-probs (probes): ``/v1/completions`` with ``echo=True, logprobs=1, max_tokens=0`` (falls back to
``max_tokens=1``) on the token ids, or ``-o logprobs_method=prompt_logprobs`` (vLLM's extra).
"""

from .backend import OpenAIBackend, OpenAIOptions

__all__ = ["OpenAIBackend", "OpenAIOptions"]
