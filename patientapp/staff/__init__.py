"""The staff blueprint: board, invitations, summaries."""
