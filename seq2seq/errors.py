"""The one exception type for mistakes a user can fix: the CLI prints it as one line."""


class UserError(Exception):
    """A problem with the user's config, paths, input or checkpoint; the message names the fix."""
