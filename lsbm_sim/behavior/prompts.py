"""Prompts for language-model behavior scorers: how a query becomes text, and how each reaction is spelled.

The shape follows the seed model card ("Text: '...' Predict the like level (low/medium/high):"): the persona
and the social context first, then the content, then the question with its answer options. The prompt ends
where the answer starts, so one forward pass gives the next-token distribution over the options.

Options are spelled as plain words with a leading space (" like") or, when the checkpoint's tokenizer has
them, as behavior tokens (`<|like|>`), the LCBM way.
"""

from __future__ import annotations

import string
from collections.abc import Sequence

from lsbm_sim.behavior.base import BehaviorQuery, SocialContext

DEFAULT_TEMPLATE = "Persona: {persona}\nContext: {context}\nText: '{content}' Predict the reaction ({options}):"
TEMPLATE_FIELDS = frozenset({"persona", "content", "context", "options"})


def behavior_token(word: str) -> str:
    """The behavior token for a reaction or level: `like` -> `<|like|>`."""
    return f"<|{word}|>"


def render_context(context: SocialContext) -> str:
    """The social context in words, e.g. 'Shared by 2 people you follow. 10+ likes and comments.'"""
    parts = []
    if context.promoted:
        parts.append("Promoted post.")
    if context.sharers >= 1:
        who = "1 person" if context.sharers == 1 else f"{context.sharers}{'+' if context.sharers >= 3 else ''} people"
        parts.append(f"Shared by {who} you follow.")
    if context.proof == 0:
        parts.append("No likes or comments yet.")
    else:
        parts.append(f"{context.proof}{'+' if context.proof >= 3 else ''} likes and comments.")
    parts.append(f"Posted {age_in_words(context.age)}.")
    if context.seen:
        parts.append(f"You have seen it {context.seen}{'+' if context.seen >= 3 else ''} times before.")
    if context.label:
        parts.append(f"Label: {context.label}")
    return " ".join(parts)


def age_in_words(minutes: int) -> str:
    """A post's age (minutes, binned as the engine bins it) as a person reads it on a platform.

    >>> [age_in_words(m) for m in (0, 15, 60, 120, 3840)]
    ['just now', '15 minutes ago', '1 hour ago', '2 hours ago', '2 days ago']
    """
    if minutes < 15:
        return "just now"
    if minutes < 60:
        return f"{minutes} minutes ago"
    hours = minutes // 60
    if hours < 48:
        return "1 hour ago" if hours == 1 else f"{hours} hours ago"
    return f"{hours // 24} days ago"


class PromptTemplate:
    """A prompt template with the fields {persona} {content} {context} {options}.

    >>> t = PromptTemplate()
    >>> t.render(BehaviorQuery("A teacher.", "Hello"), ["ignore", "like"]).splitlines()[-1]
    "Text: 'Hello' Predict the reaction (ignore/like):"
    """

    def __init__(self, template: str | None = None):
        template = DEFAULT_TEMPLATE if template in (None, "default") else template
        used = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
        unknown = used - TEMPLATE_FIELDS
        if unknown:
            raise ValueError(
                f"behavior.prompt: unknown field(s) {sorted(unknown)}; a template may use {sorted(TEMPLATE_FIELDS)}"
            )
        if "content" not in used:
            raise ValueError("behavior.prompt: the template must contain {content}")
        self.template = template

    def render(self, query: BehaviorQuery, options: Sequence[str]) -> str:
        return self.template.format(
            persona=query.persona,
            content=query.content,
            context=render_context(query.context),
            options="/".join(options),
        )

    def __repr__(self) -> str:
        return f"PromptTemplate({self.template!r})"
