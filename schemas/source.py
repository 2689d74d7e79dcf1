"""Source-warehouse contract: the tables the pipeline extracts from.

Money is exact (DECIMAL), times are UTC (TIMESTAMP without zone, UTC by contract). Rows that can
change after they are written carry `updated_at`; the extract picks rows up by it, and the lake
keeps every version.
"""

from __future__ import annotations

from schemas.types import Column, Table

SOURCE_SCHEMA = "crm"

ACQUISITION_CHANNELS = ("direct_mail", "affiliate", "paid_search", "social", "referral", "organic")
SALES_CHANNELS = ("web", "app", "store", "phone")
ORDER_STATUSES = ("completed", "partially_refunded", "refunded", "cancelled")
INTERACTION_TYPES = ("support_ticket", "complaint", "marketing_contact", "survey")
CURRENCIES = ("USD",)  # the reporting currency; others are quarantined (convert upstream)
CATEGORIES = ("music", "books", "electronics", "home", "garden", "toys", "fashion", "sports")

_UPDATED = Column("updated_at", "timestamp", "UTC time the row was last written; drives incremental extraction.", nullable=False)

CUSTOMERS = Table(
    name="customers",
    comment="Customers as the CRM system knows them.",
    grain="one row per customer",
    key=("customer_id",),
    columns=(
        Column("customer_id", "string", "Customer identifier (opaque text).", nullable=False),
        Column("signup_at", "timestamp", "UTC time the customer account was created.", nullable=False),
        Column("acquisition_channel", "string", f"Channel that acquired the customer: {', '.join(ACQUISITION_CHANNELS)}.", nullable=False),
        Column("acquisition_cost", "decimal(12,2)", "Direct cost attributed to acquiring this customer (reporting currency).", nullable=False),
        Column("region", "string", "Sales region of the customer."),
        Column("referred_by", "string", "customer_id of the customer who referred this one, if any."),
        Column("email", "string", "E-mail address. PII: never leaves the source warehouse.", pii=True),
        _UPDATED,
    ),
)

PRODUCTS = Table(
    name="products",
    comment="Product catalogue.",
    grain="one row per product",
    key=("product_id",),
    columns=(
        Column("product_id", "string", "Product identifier.", nullable=False),
        Column("category", "string", "Product category.", nullable=False),
        Column("list_price", "decimal(12,2)", "Current list price per unit.", nullable=False),
        Column("unit_cost", "decimal(12,2)", "Current cost of goods per unit.", nullable=False),
        _UPDATED,
    ),
)

ORDERS = Table(
    name="orders",
    comment="Customer orders; amounts in `currency`. Net revenue = gross - discount - refund.",
    grain="one row per order (latest version in the warehouse; the lake keeps every version)",
    key=("order_id",),
    columns=(
        Column("order_id", "string", "Order identifier.", nullable=False),
        Column("customer_id", "string", "Buying customer (customers.customer_id).", nullable=False),
        Column("ordered_at", "timestamp", "UTC time the order was placed.", nullable=False),
        Column("channel", "string", f"Sales channel: {', '.join(SALES_CHANNELS)}.", nullable=False),
        Column("status", "string", f"Order status: {', '.join(ORDER_STATUSES)}.", nullable=False),
        Column("currency", "string", "ISO 4217 currency of the amounts.", nullable=False),
        Column("gross_amount", "decimal(14,2)", "Sum of quantity x unit price over the order lines.", nullable=False),
        Column("discount_amount", "decimal(14,2)", "Discount granted on the order.", nullable=False),
        Column("refund_amount", "decimal(14,2)", "Amount refunded so far (equals gross - discount when fully refunded).", nullable=False),
        Column("shipping_cost", "decimal(12,2)", "Cost to the company of shipping the order (cost to serve).", nullable=False),
        _UPDATED,
    ),
)

ORDER_ITEMS = Table(
    name="order_items",
    comment="Order lines.",
    grain="one row per order line",
    key=("order_id", "line_number"),
    columns=(
        Column("order_id", "string", "Order (orders.order_id).", nullable=False),
        Column("line_number", "int", "Line number within the order, from 1.", nullable=False),
        Column("product_id", "string", "Product (products.product_id).", nullable=False),
        Column("quantity", "int", "Units bought.", nullable=False),
        Column("unit_price", "decimal(12,2)", "Price per unit charged on this line.", nullable=False),
        Column("unit_cost", "decimal(12,2)", "Cost of goods per unit at the time of sale.", nullable=False),
        _UPDATED,
    ),
)

INTERACTIONS = Table(
    name="interactions",
    comment="Contacts between the company and a customer: support, complaints, marketing, surveys.",
    grain="one row per interaction",
    key=("interaction_id",),
    columns=(
        Column("interaction_id", "string", "Interaction identifier.", nullable=False),
        Column("customer_id", "string", "Customer (customers.customer_id).", nullable=False),
        Column("occurred_at", "timestamp", "UTC time of the interaction.", nullable=False),
        Column("interaction_type", "string", f"Type: {', '.join(INTERACTION_TYPES)}.", nullable=False),
        Column("cost", "decimal(10,2)", "Cost to serve of this interaction.", nullable=False),
        Column("satisfaction", "int", "Satisfaction score 1-5 when the customer was surveyed, else null."),
        _UPDATED,
    ),
)

MARKETING_SPEND = Table(
    name="marketing_spend",
    comment="Acquisition marketing spend per month and channel.",
    grain="one row per month and acquisition channel",
    key=("month", "channel"),
    columns=(
        Column("month", "date", "First day of the month.", nullable=False),
        Column("channel", "string", "Acquisition channel.", nullable=False),
        Column("spend", "decimal(14,2)", "Spend in the reporting currency.", nullable=False),
        _UPDATED,
    ),
)

SOURCE_TABLES: tuple[Table, ...] = (CUSTOMERS, PRODUCTS, ORDERS, ORDER_ITEMS, INTERACTIONS, MARKETING_SPEND)
# Tables extracted by `updated_at` window (every version kept); the rest are taken whole each run.
INCREMENTAL_TABLES = ("orders", "order_items", "interactions")
SOURCE_BY_NAME = {t.name: t for t in SOURCE_TABLES}
