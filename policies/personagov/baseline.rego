# Rules every regime shares: purpose limitation, special categories, identifiers,
# generalisation of quasi-identifiers, erasure and retention. Each cites the article of the
# jurisdiction's own regime (data.pgov.citations; lib.cite).
package personagov.baseline

import data.personagov.lib
import rego.v1

subject_column(src) := c if {
	c := src.subject_column
	is_string(c)
} else := "customer_id"

normaliser(col) := object.get(data.pgov.normalisers, col, null)

# Art. 4(5), 25(1), 32(1)(a): the subject key is always pseudonymised, with one domain and
# one output name in every source so governed frames join on it.
column_action(src, col, cls) := {
	"action": "pseudonymise", "domain": lib.subject_domain, "normaliser": null,
	"output": "customer_id", "reason": "subject_key", "article": lib.cite("subject_key"),
} if {
	col == subject_column(src)

# Art. 9(1): special-category data is never processed, whatever the purpose.
} else := {"action": "drop", "reason": "special_category", "article": lib.cite("special_category")} if {
	cls == "special_category"

# Screening data (PEP, sanctions, adverse media) is for AML only, whatever data.json says.
} else := {"action": "drop", "reason": "screening_kyc_only", "article": lib.cite("screening_kyc_only")} if {
	cls == "screening"
	not lib.kyc

# AMLR Art. 22 / AMLD Art. 40: KYC keeps identifiers, reversibly pseudonymised so KYC
# operations can re-identify (audited).
} else := {
	"action": "pseudonymise", "domain": "kyc", "normaliser": normaliser(col),
	"output": col, "reason": "kyc_identifier", "article": lib.cite("kyc_identifier"),
} if {
	cls == "direct_identifier"
	lib.kyc

# Art. 5(1)(c) data minimisation: no direct identifier in clear for analytics.
} else := {"action": "drop", "reason": "direct_identifier", "article": lib.cite("direct_identifier")} if {
	cls == "direct_identifier"

# Art. 5(1)(b) purpose limitation: only the classifications the purpose lists.
} else := {"action": "drop", "reason": "purpose_limitation", "article": lib.cite("purpose_limitation")} if {
	not cls in lib.allowed_classifications

# Art. 25(1), 89(1): quasi-identifiers (and income) generalised before analysis.
} else := {
	"action": "generalise", "method": g.method, "params": g.params, "output": g.output,
	"reason": "generalisation", "article": lib.cite("generalisation"),
} if {
	g := data.pgov.generalisation[col]

# A quasi-identifier with no generalisation survives only if data.json says it is coarse.
} else := {"action": "keep", "reason": "coarse_quasi_identifier", "article": lib.cite("coarse_quasi_identifier")} if {
	cls == "quasi_identifier"
	col in data.pgov.quasi_identifier_keep
} else := {"action": "drop", "reason": "quasi_identifier_not_generalised", "article": lib.cite("quasi_identifier_not_generalised")} if {
	cls == "quasi_identifier"
} else := {"action": "keep", "reason": "purpose_permits", "article": lib.cite("purpose_permits")}

# cls is the column's classification (a string once the input is validated).
column_actions := {name: {col: column_action(src, col, cls) | some col, cls in lib.columns_of(src)} |
	some name, src in lib.sources
}

# Art. 17(1): an erasure (CCPA: deletion) request removes the subject from every purpose...
subject_exclusions contains lib.rule(
	"erasure.requested",
	object.get(data.pgov.erasure_articles, lib.regime, "GDPR Art. 17(1)"),
	lib.any_true(["erasure_requested", "deletion_requested"]),
) if {
	not lib.legal_obligation
}

# ...except where processing is necessary for a legal obligation, Art. 17(3)(b): AML/CFT
# record keeping (AMLD Art. 40, AMLR Art. 77). The request is held, not ignored.
obligations contains "erasure.legal_hold:aml_record_keeping" if lib.legal_obligation

# Art. 5(1)(e) storage limitation: records older than the purpose's retention period go.
retention_days := d if {
	d := lib.purpose_spec.retention_days
	is_number(d)
}

retention_article := object.get(data.pgov.retention_articles, lib.regime, "GDPR Art. 5(1)(e)")

# Only on a validated calendar date: both engines raise inside time.parse_ns otherwise.
cutoff := sprintf("%04d-%02d-%02d", time.date(time.add_date(time.parse_ns("2006-01-02", lib.as_of), 0, 0, 0 - retention_days))) if lib.valid_as_of

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
	some name, src in lib.sources
	rules := {lib.rule("retention.expired", retention_article, retention_condition(src)) |
		is_string(src.record_date_column)
		cutoff
	}
}

obligations contains sprintf("k_anonymity_min:%d", [data.pgov.k_anonymity_min])
