"""Entities: the join keys every feature hangs on."""

from feast import Entity, ValueType

user = Entity(
    name="user",
    join_keys=["user_id"],
    value_type=ValueType.STRING,
    description="A shopper; ids are strings like 'u000042'.",
)

item = Entity(
    name="item",
    join_keys=["item_id"],
    value_type=ValueType.STRING,
    description="A product, short video or live stream; ids are strings like 'i000042'.",
)

seller = Entity(
    name="seller",
    join_keys=["seller_id"],
    value_type=ValueType.STRING,
    description="A seller (shop); ids are strings like 's0042'. Items carry theirs as item_seller_id.",
)

category = Entity(
    name="category",
    join_keys=["category_id"],
    value_type=ValueType.INT64,
    description="An item category (0..categories-1). Keys user x category features together with user_id; a "
    "candidate's category is its item_category_id.",
)

# By the entity names the feature contract uses.
ENTITIES = {entity.name: entity for entity in (user, item, seller, category)}
