"""Request plumbing shared by every blueprint: context, errors, form pieces, tablet."""
