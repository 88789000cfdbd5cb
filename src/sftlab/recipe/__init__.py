"""The recipe: one YAML file that describes a whole run, validated by pydantic.

``load_recipe(path, overrides)`` returns a :class:`Recipe`; every problem in the
file (unknown keys with the nearest valid key, wrong types, bad values) is
collected and raised once as :class:`sftlab.errors.RecipeError`.
"""

from sftlab.recipe.load import load_recipe, parse_overrides, recipe_from_dict
from sftlab.recipe.schema import Recipe

__all__ = ["Recipe", "load_recipe", "parse_overrides", "recipe_from_dict"]
