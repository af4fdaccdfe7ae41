# The one entry point: data.personagov.decision.decision is the whole plan document for one
# refresh (actor, jurisdiction, purpose). Everything else in the bundle feeds it.
# An input that fails personagov.validate gets a deny listing only its input.invalid:*
# reasons; everything below is evaluated on validated input only.
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
import data.personagov.validate
import rego.v1

valid_input if count(validate.deny) == 0

deny contains r if some r in access.refresh_deny

deny contains r if some r in transfers.deny

deny contains r if some r in kyc_aml.deny

# A rule needs a privacy role the workspace does not declare: deny, naming role and rule
# ("role.missing:<role>:<rule>"; "a|b" = one of these roles).
deny contains sprintf("role.missing:%s:%s", [m.role, m.rule]) if some m in missing_roles

subject_exclusions := (((((gdpr.subject_exclusions | uk_gdpr.subject_exclusions) | lgpd.subject_exclusions) | ccpa.subject_exclusions) | pdpa.subject_exclusions) | us_baseline.subject_exclusions) | baseline.subject_exclusions

nullings := ccpa.nullings | pdpa.nullings

obligations := ((baseline.obligations | transfers.obligations) | kyc_aml.obligations) | pdpa.obligations

# Every (role, rule) pair whose condition reads a role this workspace does not provide.
missing_roles contains {"role": substring(node, count(lib.missing_prefix), -1), "rule": r.reason} if {
	some r in subject_exclusions | nullings
	walk(r.condition, [_, node])
	is_string(node)
	startswith(node, lib.missing_prefix)
}

# A nulling names a classification or columns; per source it lists only the columns that
# would otherwise survive.
nulled_columns(name, n) := sort([col |
	some col, cls in lib.columns_of(lib.sources[name])
	cls == n.classification
	baseline.column_actions[name][col].action != "drop"
]) if {
	n.classification
} else := sort([col |
	some col in n.columns
	lib.columns_of(lib.sources[name])[col]
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
	some name, src in lib.sources
}

allowed_decision := {
	"allow": true,
	"deny": [],
	"jurisdiction": lib.jurisdiction_tag,
	"purpose": lib.purpose,
	"regime": lib.regime,
	"subject_domain": lib.subject_domain,
	"sources": sources,
	"subject_exclusions": [r | some r in subject_exclusions],
	"obligations": sort(obligations),
	"k_anonymity_min": data.pgov.k_anonymity_min,
	"kyc_ruleset": kyc_aml.ruleset,
	"missing_roles": [],
	"policy_revision": data.pgov.revision,
}

# A denied refresh carries its reasons (and the missing roles), not a plan: nothing of it
# is executed, and leaving the plan out keeps a deny cheap on both engines.
denied_decision := {
	"allow": false,
	"deny": sort(deny),
	"jurisdiction": lib.jurisdiction_tag,
	"purpose": lib.purpose,
	"regime": lib.regime,
	"subject_domain": lib.subject_domain,
	"sources": {},
	"subject_exclusions": [],
	"obligations": [],
	"k_anonymity_min": data.pgov.k_anonymity_min,
	"kyc_ruleset": null,
	"missing_roles": sort([m | some m in missing_roles]),
	"policy_revision": data.pgov.revision,
}

rejected_decision := {
	"allow": false,
	"deny": sort(validate.deny),
	"jurisdiction": lib.jurisdiction_tag,
	"purpose": lib.purpose,
	"regime": lib.regime,
	"subject_domain": lib.subject_domain,
	"sources": {},
	"subject_exclusions": [],
	"obligations": [],
	"k_anonymity_min": data.pgov.k_anonymity_min,
	"kyc_ruleset": null,
	"missing_roles": [],
	"policy_revision": data.pgov.revision,
}

decision := allowed_decision if {
	valid_input
	count(deny) == 0
}

decision := denied_decision if {
	valid_input
	count(deny) > 0
}

decision := rejected_decision if not valid_input
