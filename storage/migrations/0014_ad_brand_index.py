"""Matching by brand without a sub-type: an index that leads with the brand."""

from peewee import *


def up(migrator, db):
    # A hunt with brands and no sub-types read every ad of its locations' publication window
    # (the location index's brand column is checked, not sought); this one seeks the brand.
    migrator.migrate(
        migrator.add_index("ad", ("brand", "postal_code", "published_at", "price"), False),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_index("ad", "ad_brand_postal_code_published_at_price"),
    )
