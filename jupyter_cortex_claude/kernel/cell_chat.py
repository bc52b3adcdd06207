"""``%%cortex_claude``: the cell is the prompt, the answer streams into the output as Markdown.

```
%%cortex_claude [--new] [--model M] [--system TEXT] [--context VAR [VAR ...]] [--max-tokens N]
%%cortex_claude --agent [--max-turns N] [--model M] [--permission-mode MODE]
```

The conversation continues across cells of the same kernel (one notebook) until ``--new``;
``--model`` and ``--system`` stay in force for the rest of the conversation. Interrupting the kernel
closes the HTTP connection, and so the gateway's call to Cortex.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
import weakref
from typing import Any

import httpx

from .agent_run import run_agent
from .chat_session import ChatSession
from .discovery import gateway_endpoint
from .messages_client import ChatRequestError, StreamedAnswer

UPDATE_INTERVAL = 0.05  # seconds between two re-renderings of a growing answer

_sessions: weakref.WeakKeyDictionary[Any, ChatSession] = weakref.WeakKeyDictionary()


class _ArgumentError(ValueError):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would exit the kernel's process
        raise _ArgumentError(f"%%cortex_claude: {message}\n{self.format_usage()}")


def argument_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="%%cortex_claude", add_help=False)
    parser.add_argument("--new", action="store_true", help="start a new conversation")
    parser.add_argument("--model", help="Claude model for this conversation")
    parser.add_argument("--system", help="system prompt for this conversation")
    parser.add_argument("--context", nargs="+", metavar="VAR", help="variables to describe")
    parser.add_argument("--max-tokens", type=int, help="longest answer, in tokens")
    parser.add_argument("--agent", action="store_true", help="run Claude Code on this folder")
    parser.add_argument("--max-turns", type=int, default=8, help="agent turns (with --agent)")
    parser.add_argument("--permission-mode", default="acceptEdits", help="Claude Code's mode")
    parser.add_argument("--help", action="store_true")
    return parser


def session_for(shell: Any) -> ChatSession:
    """The conversation of this kernel's notebook (one per IPython shell)."""
    session = _sessions.get(shell)
    if session is None:
        session = _sessions[shell] = ChatSession()
    return session


def run_cell(line: str, cell: str, shell: Any) -> None:
    parser = argument_parser()
    try:
        args = parser.parse_args(shlex.split(line))
    except (_ArgumentError, ValueError) as error:
        print(str(error), file=sys.stderr)
        return
    if args.help:
        print(parser.format_help())
        return
    prompt = cell.strip()
    if args.context:
        from .variable_context import describe_variables

        try:
            described = describe_variables(args.context, shell.user_ns)
        except KeyError as error:
            print(error.args[0], file=sys.stderr)
            return
        prompt = f"Notebook variables:\n\n{described}\n\n{prompt}"
    if args.agent:
        run_agent(
            prompt, shell, model=args.model, max_turns=args.max_turns, mode=args.permission_mode
        )
        return
    if args.new:  # a new conversation forgets its system prompt and model too
        _sessions[shell] = ChatSession()
    session = session_for(shell)
    if args.model:
        session.model = args.model
    if args.system is not None:
        session.system = args.system or None
    if args.max_tokens:
        session.max_tokens = args.max_tokens
    if not prompt:
        print("New conversation." if args.new else "The cell is empty: write your question in it.")
        return
    endpoint = gateway_endpoint()
    if endpoint is None:
        return
    stream_answer_into_output(session, endpoint, prompt)


def stream_answer_into_output(session: ChatSession, endpoint: Any, prompt: str) -> StreamedAnswer:
    from IPython.display import Markdown, display

    handle = display(Markdown("*…*"), display_id=True)
    last_update = 0.0
    partial = ""

    def on_text(answer: StreamedAnswer) -> None:
        nonlocal last_update, partial
        partial = answer.text
        now = time.monotonic()
        if now - last_update >= UPDATE_INTERVAL:
            last_update = now
            handle.update(Markdown(answer.text + " ▌"))

    answer = StreamedAnswer()
    try:
        answer = session.ask(endpoint, prompt, on_text)
    except KeyboardInterrupt:
        handle.update(Markdown(partial + "\n\n*(interrupted: the request was stopped)*"))
        raise
    except ChatRequestError as error:
        handle.update(Markdown(f"**cortex-claude:** {error}"))
        return answer
    except httpx.HTTPError as error:
        handle.update(Markdown(f"**cortex-claude:** the gateway could not be reached: {error}"))
        return answer
    handle.update(Markdown(answer.text + "\n\n" + footer(session, answer)))
    return answer


def footer(session: ChatSession, answer: StreamedAnswer) -> str:
    turns = len(session.messages) // 2
    return (
        f"<sub>{answer.model or session.model} · {answer.input_tokens} in / "
        f"{answer.output_tokens} out tokens · conversation: {turns} exchange"
        f"{'s' if turns != 1 else ''}, {session.total_tokens} tokens</sub>"
    )
