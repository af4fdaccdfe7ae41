"""Pseudonymisation domains, keys, generalisation, k-anonymity and controlled re-identification.

Public surface:
    Keyring              versioned master keys, HKDF-derived per-domain/per-column keys, sealing
    Pseudonymiser        token_expr(column, domain, normaliser) -> pl.Expr (embeds keys!)
    generalise_expr      quasi-identifier generalisation by method
    normalise_expr       e-mail / phone / national id canonical forms
"""

from engine.pseudonym.generalise import METHODS, generalise_expr
from engine.pseudonym.keyring import KeyProvider, Keyring, register_provider
from engine.pseudonym.normalise import normalise_expr
from engine.pseudonym.tokens import DOMAINS, KYC, MARKETING, Pseudonymiser, parse_token

__all__ = [
    "DOMAINS",
    "KYC",
    "MARKETING",
    "METHODS",
    "KeyProvider",
    "Keyring",
    "Pseudonymiser",
    "generalise_expr",
    "normalise_expr",
    "parse_token",
    "register_provider",
]
