# The one entry point: data.personagov.decision.decision is the whole plan document for one
# refresh (actor, jurisdiction, purpose). Everything else in the bundle feeds it.
package personagov.decision

import data.personagov.access
import data.personagov.baseline
import data.personagov.ccpa
import data.personagov.gdpr
import data.personagov.kyc_aml
import data.personagov.lgpd
import data.personagov.lib
import data.personagov.pdpa
import data.personagov.transfers
import data.personagov.uk_gdpr
import data.personagov.us_baseline
import rego.v1

deny contains r if some r in access.refresh_deny

deny contains r if some r in transfers.deny

deny contains r if some r in kyc_aml.deny

# Fail closed on an input we cannot decide on.
deny contains "input.no_sources" if not is_object(input.sources)

# The workspace names its subjects source (input.subjects); no source name is special.
deny contains "input.no_subjects_source" if not subjects_declared

subjects_declared if {
	name := input.subjects
	input.sources[name]
}

deny contains "input.as_of_invalid" if not lib.valid_as_of

subject_exclusions := (((((gdpr.subject_exclusions | uk_gdpr.subject_exclusions) | lgpd.subject_exclusions) | ccpa.subject_exclusions) | pdpa.subject_exclusions) | us_baseline.subject_exclusions) | baseline.subject_exclusions

nullings := ccpa.nullings | pdpa.nullings

obligations := ((baseline.obligations | transfers.obligations) | kyc_aml.obligations) | pdpa.obligations

# A nulling names a classification or columns; per source it lists only the columns that
# would otherwise survive.
nulled_columns(name, n) := sort([col |
	some col, cls in input.sources[name].columns
	cls == n.classification
	baseline.column_actions[name][col].action != "drop"
]) if {
	n.classification
} else := sort([col |
	some col in n.columns
	input.sources[name].columns[col]
	baseline.column_actions[name][col].action != "drop"
])

source_nullings(name) := [object.union(object.remove(n, ["classification", "columns"]), {"columns": cols}) |
	some n in nullings
	cols := nulled_columns(name, n)
	count(cols) > 0
]

sources := {name: {
	"subject_column": baseline.subject_column(src),
	"columns": baseline.column_actions[name],
	"row_rules": [r | some r in baseline.row_rules[name]],
	"nullings": source_nullings(name),
} |
	some name, src in input.sources
}

decision := {
	"allow": count(deny) == 0,
	"deny": sort(deny),
	"jurisdiction": input.jurisdiction,
	"purpose": input.purpose,
	"regime": lib.regime,
	"subject_domain": lib.subject_domain,
	"sources": sources,
	"subject_exclusions": [r | some r in subject_exclusions],
	"obligations": sort(obligations),
	"k_anonymity_min": data.pgov.k_anonymity_min,
	"kyc_ruleset": kyc_aml.ruleset,
	"policy_revision": data.pgov.revision,
}
