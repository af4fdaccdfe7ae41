"""Jurisdictions of the sample and what goes with each: country, share, phone and ID formats."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Region:
    jurisdiction: str
    country: str
    share: float  # share of customers
    phone_prefix: str  # E.164 country code plus a mobile/area prefix
    tld: str  # e-mail domain flavour (all under reserved example.* domains)
    lat: float
    lon: float


# Sorted by jurisdiction name: sorting the code sorts the string, so generated rows come out
# ordered by (jurisdiction, key) without sorting tens of millions of strings.
REGIONS: tuple[Region, ...] = (
    Region("BR", "BR", 0.10, "+55119", "com", -23.55, -46.63),
    Region("EU-DE", "DE", 0.16, "+49151", "com", 52.52, 13.40),
    Region("EU-ES", "ES", 0.09, "+346", "org", 40.42, -3.70),
    Region("EU-FR", "FR", 0.13, "+336", "net", 48.86, 2.35),
    Region("EU-IT", "IT", 0.09, "+39347", "org", 41.90, 12.50),
    Region("EU-NL", "NL", 0.05, "+316", "net", 52.37, 4.90),
    Region("SG", "SG", 0.04, "+658", "com", 1.35, 103.82),
    Region("UK", "GB", 0.14, "+447", "org", 51.51, -0.13),
    Region("US-CA", "US", 0.12, "+1415", "com", 37.77, -122.42),
    Region("US-NY", "US", 0.08, "+1212", "net", 40.71, -74.01),
)
JURISDICTIONS: tuple[str, ...] = tuple(r.jurisdiction for r in REGIONS)
assert list(JURISDICTIONS) == sorted(JURISDICTIONS)
assert abs(sum(r.share for r in REGIONS) - 1.0) < 1e-9

# Given names per region (ASCII so e-mail local parts stay valid without transliteration).
GIVEN: dict[str, tuple[str, ...]] = {
    "BR": ("Joao", "Ana", "Lucas", "Mariana", "Gabriel", "Beatriz", "Rafael", "Larissa"),
    "EU-DE": ("Lukas", "Anna", "Jonas", "Lena", "Felix", "Mia", "Maximilian", "Hannah"),
    "EU-ES": ("Alejandro", "Lucia", "Pablo", "Carmen", "Javier", "Elena", "Diego", "Paula"),
    "EU-FR": ("Louis", "Camille", "Hugo", "Chloe", "Antoine", "Manon", "Julien", "Ines"),
    "EU-IT": ("Matteo", "Giulia", "Lorenzo", "Chiara", "Francesco", "Sofia", "Marco", "Elisa"),
    "EU-NL": ("Daan", "Emma", "Sem", "Julia", "Bram", "Tess", "Thijs", "Fenna"),
    "SG": ("Wei", "Hui", "Jun", "Mei", "Arjun", "Priya", "Hafiz", "Nurul"),
    "UK": ("Oliver", "Amelia", "Harry", "Isla", "George", "Ava", "Jack", "Poppy"),
    "US-CA": ("Ethan", "Olivia", "Mason", "Sophia", "Logan", "Harper", "Caleb", "Avery"),
    "US-NY": ("Liam", "Emily", "Noah", "Abigail", "Aiden", "Madison", "Owen", "Grace"),
}
# Middle names and initials are region-independent; with the stem/suffix family names they
# give every customer a unique, distinctive full name (tests search outputs for them).
MIDDLE: tuple[str, ...] = (
    "Adair",
    "Blaise",
    "Corin",
    "Dorian",
    "Ellery",
    "Fabian",
    "Greer",
    "Hollis",
    "Ivo",
    "Jules",
    "Kit",
    "Linden",
    "Marlo",
    "Noor",
    "Orrin",
    "Perrin",
    "Quill",
    "Rowan",
    "Sable",
    "Tamsin",
    "Umber",
    "Vesna",
    "Wren",
    "Xavi",
    "Yael",
    "Zephyr",
    "Anselm",
    "Briar",
    "Cosima",
    "Delphine",
    "Emrys",
    "Fenwick",
)
# Family name = stem (all 4 letters, so stem+suffix splits one way only) + suffix.
STEMS: tuple[str, ...] = (
    "Brak",
    "Cald",
    "Dorn",
    "Essl",
    "Falk",
    "Garr",
    "Hald",
    "Ingr",
    "Jans",
    "Kell",
    "Lind",
    "Mohr",
    "Nord",
    "Ostr",
    "Pell",
    "Quin",
    "Rask",
    "Sund",
    "Tolv",
    "Ulst",
    "Vald",
    "Wern",
    "Yarb",
    "Zell",
    "Ambr",
    "Bels",
    "Cors",
    "Dalv",
    "Elms",
    "Forb",
    "Gunn",
    "Hask",
    "Ivar",
    "Jorv",
    "Korn",
    "Lamb",
    "Marv",
    "Neth",
    "Orms",
    "Pash",
    "Ravn",
    "Stol",
    "Tarn",
    "Urqu",
    "Vint",
    "Wald",
    "Xand",
    "Yost",
)
SUFFIXES: tuple[str, ...] = (
    "berg",
    "ley",
    "ini",
    "ez",
    "sen",
    "ard",
    "ova",
    "ton",
    "mann",
    "ier",
    "ello",
    "sky",
    "wick",
    "holm",
    "ford",
    "stein",
    "ucci",
    "eda",
    "aker",
    "inho",
    "oux",
    "ens",
    "dottir",
    "strom",
    "ville",
    "mont",
    "hurst",
    "oglu",
    "ski",
    "ani",
    "ecki",
    "lund",
    "quist",
    "ado",
    "ette",
    "ridge",
    "dale",
    "worth",
    "ingh",
    "iro",
    "ssen",
    "acre",
    "bury",
    "cott",
    "ham",
    "ling",
    "more",
    "wood",
)

STREETS: dict[str, tuple[str, ...]] = {
    "BR": ("Rua Augusta", "Avenida Paulista", "Rua Oscar Freire"),
    "EU-DE": ("Hauptstrasse", "Lindenallee", "Schillerweg"),
    "EU-ES": ("Calle Mayor", "Gran Via", "Calle de Alcala"),
    "EU-FR": ("Rue de Rivoli", "Avenue Victor Hugo", "Rue Lafayette"),
    "EU-IT": ("Via Roma", "Corso Italia", "Via Garibaldi"),
    "EU-NL": ("Kerkstraat", "Prinsengracht", "Dorpsstraat"),
    "SG": ("Orchard Road", "Tampines Avenue", "Jurong West Street"),
    "UK": ("High Street", "Station Road", "Church Lane"),
    "US-CA": ("Market Street", "Mission Street", "Valencia Street"),
    "US-NY": ("Broadway", "Lexington Avenue", "Amsterdam Avenue"),
}
CITIES: dict[str, str] = {
    "BR": "Sao Paulo",
    "EU-DE": "Berlin",
    "EU-ES": "Madrid",
    "EU-FR": "Paris",
    "EU-IT": "Roma",
    "EU-NL": "Amsterdam",
    "SG": "Singapore",
    "UK": "London",
    "US-CA": "San Francisco",
    "US-NY": "New York",
}

_ALL_GIVEN = [g for names in GIVEN.values() for g in names]
# Distinct given names keep (region, name parts) -> full name one-to-one.
assert len(set(_ALL_GIVEN)) == len(_ALL_GIVEN)
NAME_CAPACITY = len(GIVEN["UK"]) * len(MIDDLE) * 26 * len(STEMS) * len(SUFFIXES)
