"""Hunts: match imported ads against each hunt's criteria and contact the new ones, within caps."""
