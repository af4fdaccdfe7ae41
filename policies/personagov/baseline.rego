# Rules every regime shares: purpose limitation, special categories, identifiers,
# generalisation of quasi-identifiers, erasure and retention. Citations are the GDPR's; the
# other regimes have equivalents (LGPD Art. 6 I, 11; CCPA §1798.100(c); PDPA s.18, 25).
package personagov.baseline

import data.personagov.lib
import rego.v1

subject_column(src) := object.get(src, "subject_column", "customer_id")

normaliser(col) := object.get(data.pgov.normalisers, col, null)

# Art. 4(5), 25(1), 32(1)(a): the subject key is always pseudonymised, with one domain and
# one output name in every source so governed frames join on it.
column_action(src, col, _) := {
	"action": "pseudonymise", "domain": lib.subject_domain, "normaliser": null,
	"output": "customer_id", "reason": "subject_key", "article": "GDPR Art. 4(5), 25(1)",
} if {
	col == subject_column(src)

# Art. 9(1): special-category data is never processed, whatever the purpose.
} else := {"action": "drop", "reason": "special_category", "article": "GDPR Art. 9(1)"} if {
	src.columns[col] == "special_category"

# Screening data (PEP, sanctions, adverse media) is for AML only, whatever data.json says.
} else := {"action": "drop", "reason": "screening_kyc_only", "article": "GDPR Art. 5(1)(b); AMLR Art. 20"} if {
	src.columns[col] == "screening"
	not lib.kyc

# AMLR Art. 22 / AMLD Art. 40: KYC keeps identifiers, reversibly pseudonymised so KYC
# operations can re-identify (audited).
} else := {
	"action": "pseudonymise", "domain": "kyc", "normaliser": normaliser(col),
	"output": col, "reason": "kyc_identifier", "article": "GDPR Art. 6(1)(c); AMLR Art. 22",
} if {
	src.columns[col] == "direct_identifier"
	lib.kyc

# Art. 5(1)(c) data minimisation: no direct identifier in clear for analytics.
} else := {"action": "drop", "reason": "direct_identifier", "article": "GDPR Art. 5(1)(c), 25(1)"} if {
	src.columns[col] == "direct_identifier"

# Art. 5(1)(b) purpose limitation: only the classifications the purpose lists.
} else := {"action": "drop", "reason": "purpose_limitation", "article": "GDPR Art. 5(1)(b)"} if {
	not src.columns[col] in lib.allowed_classifications

# Art. 25(1), 89(1): quasi-identifiers (and income) generalised before analysis.
} else := {
	"action": "generalise", "method": g.method, "params": g.params, "output": g.output,
	"reason": "generalisation", "article": "GDPR Art. 25(1), 89(1)",
} if {
	g := data.pgov.generalisation[col]

# A quasi-identifier with no generalisation survives only if data.json says it is coarse.
} else := {"action": "keep", "reason": "coarse_quasi_identifier", "article": "GDPR Art. 5(1)(c)"} if {
	src.columns[col] == "quasi_identifier"
	col in data.pgov.quasi_identifier_keep
} else := {"action": "drop", "reason": "quasi_identifier_not_generalised", "article": "GDPR Art. 5(1)(c)"} if {
	src.columns[col] == "quasi_identifier"
} else := {"action": "keep", "reason": "purpose_permits", "article": "GDPR Art. 5(1)(b)"}

column_actions := {name: {col: column_action(src, col, cls) | some col, cls in src.columns} |
	some name, src in input.sources
}

# Art. 17(1): an erasure (CCPA: deletion) request removes the subject from every purpose...
subject_exclusions contains lib.rule(
	"erasure.requested",
	object.get(data.pgov.erasure_articles, lib.regime, "GDPR Art. 17(1)"),
	{"any": [lib.is_true("erasure_requested"), lib.is_true("deletion_requested")]},
) if {
	not lib.legal_obligation
}

# ...except where processing is necessary for a legal obligation, Art. 17(3)(b): AML/CFT
# record keeping (AMLD Art. 40, AMLR Art. 77). The request is held, not ignored.
obligations contains "erasure.legal_hold:aml_record_keeping" if lib.legal_obligation

# Art. 5(1)(e) storage limitation: records older than the purpose's retention period go.
retention_days := lib.purpose_spec.retention_days

retention_article := object.get(data.pgov.retention_articles, lib.regime, "GDPR Art. 5(1)(e)")

cutoff := sprintf("%04d-%02d-%02d", time.date(time.add_date(time.parse_ns("2006-01-02", input.as_of), 0, 0, 0 - retention_days))) if lib.valid_as_of

cutoff_value(src) := concat("", [cutoff, "T00:00:00"]) if {
	src.record_date_type == "datetime"
} else := cutoff

expired(src) := {"field": src.record_date_column, "op": "lt", "value": cutoff_value(src)}

# A live record (an active loan: a running contract) is not expired by the age of its
# record date; storage limitation runs from the end of the relationship it documents.
retention_condition(src) := {"all": [expired(src), {"not": src.open_condition}]} if {
	is_object(src.open_condition)
} else := expired(src)

row_rules := {name: rules |
	some name, src in input.sources
	rules := {lib.rule("retention.expired", retention_article, retention_condition(src)) |
		is_string(src.record_date_column)
		cutoff
	}
}

obligations contains sprintf("k_anonymity_min:%d", [data.pgov.k_anonymity_min])
