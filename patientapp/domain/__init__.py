"""The rules about visits, accounts and the clinic, over the database."""
