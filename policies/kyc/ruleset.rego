# KYC/AML customer risk ruleset.
#
# Evaluated ONCE per kyc_aml refresh: the answer is a document of typed conditions that the
# engine compiles to Polars (engine/kyc/tiering.py). Rego never runs per customer.
#
# Sources of the rules:
#   EBA GL 2021/02 (ML/TF risk factors guidelines), Title I ch. 2 (risk factors by family)
#     and 4.x / 3.6 on weighting: "firms should ensure that weighting is not unduly
#     influenced by one factor" and that weighting never prevents a high-risk rating.
#   EU AMLR (Regulation (EU) 2024/1624, applies from 10 July 2027):
#     Art. 20  customer due diligence; Art. 33 simplified due diligence;
#     Art. 34  enhanced due diligence; Art. 29 high-risk third countries;
#     Art. 42-46 politically exposed persons (senior management approval, Art. 42(1)(b));
#     Art. 26(2) review of customer information: at most 1 year for higher risk,
#     at most 5 years for all other customers; out-of-cycle on relevant changes.
#   Restrictive measures (EU Reg. 2580/2001, sanctions regimes): no business relationship.
#
# Facts the conditions may name (engine/kyc/facts.py builds them per kyc-domain token):
#   customer_type, employment_type, business_sector, tenure_days, country, screened, pep,
#   sanctions_hit, adverse_media, has_crypto_wallet, wallet_volume_90d, txn_total_amount,
#   cash_share, crypto_share, max_txn_amount, persona_id, persona_name, plus feature columns.
package personagov.kyc_ruleset

import rego.v1

tiers := ["SDD", "CDD", "EDD", "EDD_SENIOR", "PROHIBITED"]

# ---------------------------------------------------------------- factors (EBA GL 2021/02 ch. 2)
# Points add up; thresholds map the total to SDD / CDD / EDD. Floors (below) come after.

# Customer risk factors (EBA GL 2.4-2.6): legal form and business activity.
customer_factors := [
	{
		"id": "customer.smb",
		"family": "customer",
		"points": 10,
		"reason_code": "CUST_BUSINESS_CUSTOMER",
		"condition": {"field": "customer_type", "op": "eq", "value": "smb"},
	},
	{
		# EBA GL 2.5(c): cash-intensive or higher-risk sectors.
		"id": "customer.high_risk_sector",
		"family": "customer",
		"points": 20,
		"reason_code": "CUST_HIGH_RISK_SECTOR",
		"condition": {"field": "business_sector", "op": "in", "value": data.kyc.high_risk_sectors},
	},
	{
		"id": "customer.self_employed",
		"family": "customer",
		"points": 5,
		"reason_code": "CUST_SELF_EMPLOYED_OR_OWNER",
		"condition": {"field": "employment_type", "op": "in", "value": ["self_employed", "business_owner"]},
	},
	{
		# A new relationship has no behaviour history to rely on (EBA GL 2.7).
		"id": "customer.new_relationship",
		"family": "customer",
		"points": 5,
		"reason_code": "CUST_NEW_RELATIONSHIP",
		"condition": {"field": "tenure_days", "op": "lt", "value": 90},
	},
	{
		# Missing screening is never read as "clear": it costs points and sets a floor.
		"id": "customer.unscreened",
		"family": "customer",
		"points": 15,
		"reason_code": "SCREENING_MISSING",
		"condition": {"field": "screened", "op": "eq", "value": false},
	},
]

# Geographical risk factors (EBA GL 2.9-2.15; AMLR Art. 29 list).
geography_factors := [{
	"id": "geography.high_risk_third_country",
	"family": "geography",
	"points": 25,
	"reason_code": "GEO_HIGH_RISK_THIRD_COUNTRY",
	"condition": {"field": "country", "op": "in", "value": data.kyc.high_risk_third_countries},
}]

# Product, service, transaction and delivery-channel factors (EBA GL 2.16-2.22).
product_channel_factors := [
	{
		"id": "product.crypto_wallet",
		"family": "product_channel",
		"points": 10,
		"reason_code": "PROD_CRYPTO_WALLET",
		"condition": {"field": "has_crypto_wallet", "op": "eq", "value": true},
	},
	{
		"id": "product.high_crypto_volume",
		"family": "product_channel",
		"points": 15,
		"reason_code": "PROD_HIGH_CRYPTO_VOLUME",
		"condition": {"field": "wallet_volume_90d", "op": "ge", "value": 100000},
	},
]

# Transaction behaviour (EBA GL 4.x ongoing monitoring; cash thresholds as AMLR Art. 80).
transaction_factors := [
	{
		"id": "transaction.cash_intensive",
		"family": "transaction",
		"points": 15,
		"reason_code": "TXN_CASH_INTENSIVE",
		"condition": {"field": "cash_share", "op": "ge", "value": 0.5},
	},
	{
		"id": "transaction.crypto_channel",
		"family": "transaction",
		"points": 10,
		"reason_code": "TXN_CRYPTO_CHANNEL",
		"condition": {"field": "crypto_share", "op": "ge", "value": 0.3},
	},
	{
		"id": "transaction.large_single",
		"family": "transaction",
		"points": 10,
		"reason_code": "TXN_LARGE_SINGLE_AMOUNT",
		"condition": {"field": "max_txn_amount", "op": "ge", "value": 10000},
	},
	{
		"id": "transaction.high_volume",
		"family": "transaction",
		"points": 15,
		"reason_code": "TXN_HIGH_VOLUME",
		"condition": {"field": "txn_total_amount", "op": "ge", "value": 1000000},
	},
]

# Persona risk: personas the second line has reviewed as higher risk.
persona_factors := [{
	"id": "persona.high_risk",
	"family": "persona",
	"points": 10,
	"reason_code": "PERSONA_HIGH_RISK",
	"condition": {"field": "persona_name", "op": "in", "value": data.kyc.high_risk_personas},
}]

factors := array.concat(
	array.concat(array.concat(customer_factors, geography_factors), product_channel_factors),
	array.concat(transaction_factors, persona_factors),
)

# ---------------------------------------------------------------- thresholds
# Minimum score per tier. AMLR Art. 33 SDD only where risk is demonstrably low.
thresholds := {"SDD": 0, "CDD": 15, "EDD": 40}

# ---------------------------------------------------------------- floors
# EBA GL 2021/02 (weighting): no weighting may stop a customer being rated high risk, so
# these set a minimum tier whatever the score.
floors := [
	{
		# Restrictive measures: no relationship; escalate at once.
		"id": "floor.sanctions",
		"condition": {"field": "sanctions_hit", "op": "eq", "value": true},
		"min_tier": "PROHIBITED",
		"reason_code": "SANCTIONS_HIT",
	},
	{
		# AMLR Art. 42(1)(b): PEP relationships need senior management approval.
		"id": "floor.pep",
		"condition": {"field": "pep", "op": "eq", "value": true},
		"min_tier": "EDD_SENIOR",
		"reason_code": "PEP",
	},
	{
		# AMLR Art. 29 / 34: enhanced measures for high-risk third countries.
		"id": "floor.high_risk_third_country",
		"condition": {"field": "country", "op": "in", "value": data.kyc.high_risk_third_countries},
		"min_tier": "EDD",
		"reason_code": "HIGH_RISK_THIRD_COUNTRY",
	},
	{
		# EBA GL 2.6(c): adverse media on ML/TF or predicate offences.
		"id": "floor.adverse_media",
		"condition": {"field": "adverse_media", "op": "eq", "value": true},
		"min_tier": "EDD",
		"reason_code": "ADVERSE_MEDIA",
	},
	{
		# Unscreened customers cannot be on simplified due diligence (AMLR Art. 33).
		"id": "floor.unscreened",
		"condition": {"field": "screened", "op": "eq", "value": false},
		"min_tier": "CDD",
		"reason_code": "SCREENING_MISSING",
	},
]

# ---------------------------------------------------------------- review cycle
# AMLR Art. 26(2): at most 12 months for higher risk, at most 60 for others.
review_months := {"SDD": 60, "CDD": 36, "EDD": 12, "EDD_SENIOR": 12, "PROHIBITED": 12}

# ---------------------------------------------------------------- queues (first match wins)
# Fields: tier, computed_tier, score, out_of_cycle_review, tier_change and one boolean
# column per reason code named "reason.<CODE>".
queues := [
	{
		"queue": "sanctions-escalation",
		"condition": {"any": [
			{"field": "tier", "op": "eq", "value": "PROHIBITED"},
			{"field": "reason.SANCTIONS_HIT", "op": "eq", "value": true},
		]},
		"sla_days": 1,
	},
	{
		# AMLR Art. 42(1)(b): senior management approval for PEPs.
		"queue": "edd-senior-approval",
		"condition": {"any": [
			{"field": "tier", "op": "eq", "value": "EDD_SENIOR"},
			{"field": "reason.PEP", "op": "eq", "value": true},
		]},
		"sla_days": 5,
	},
	{
		"queue": "edd-review",
		"condition": {"field": "tier", "op": "eq", "value": "EDD"},
		"sla_days": 10,
	},
	{
		# CDD, and any low-risk customer whose factors changed (AMLR Art. 26(2) trigger).
		"queue": "standard-review",
		"condition": {"any": [
			{"field": "tier", "op": "eq", "value": "CDD"},
			{"field": "out_of_cycle_review", "op": "eq", "value": true},
		]},
		"sla_days": 30,
	},
	{
		"queue": "expedited-onboarding",
		"condition": {"field": "tier", "op": "eq", "value": "SDD"},
		"sla_days": 2,
	},
]

ruleset := {
	"version": data.kyc.ruleset_version,
	"tiers": tiers,
	"factors": factors,
	"thresholds": thresholds,
	"floors": floors,
	"review_months": review_months,
	"queues": queues,
	# Nothing is ever left unrouted: a customer no rule matches goes here.
	"default_queue": "standard-review",
	"min_cell_size": data.kyc.min_cell_size,
}
