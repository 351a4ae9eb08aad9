"""The slash commands, as pure text processing: which lines of a comment are commands, and what they say.

:mod:`~bot.commands.grammar` (``parse(comment) -> Command | Reply | Ignore``) reads the command
lines that :mod:`~bot.commands.lexer` finds outside code, quotes and HTML comments, against the
verbs and help texts of :mod:`~bot.commands.verbs`. No I/O: the handlers decide what to do.
"""
