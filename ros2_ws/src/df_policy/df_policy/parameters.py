"""ROS 2 parameters generated from config dataclasses: one declaration per field, with the
field's documentation, range and choices (policy.config_io.documented) as its
descriptor, and the dataclass rebuilt (and so validated) from the values in force.

A node never restates a default: the dataclass (or the instance it is handed, e.g. the
robot description's safety limits) holds it; launch files and parameter files override.
"""

from __future__ import annotations

import sys
from dataclasses import Field, fields, is_dataclass, replace
from typing import Any, get_args, get_origin, get_type_hints

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.node import Node

from policy.config_io import field_doc

_INT_MAX = 2**31 - 1


class ParameterError(ValueError):
    """A parameter has a value of the wrong type or out of range; the message names it."""


def _ros_type(value: Any, integers: bool = False) -> int:
    if isinstance(value, bool):
        return ParameterType.PARAMETER_BOOL
    if isinstance(value, int):
        return ParameterType.PARAMETER_INTEGER
    if isinstance(value, float):
        return ParameterType.PARAMETER_DOUBLE
    if isinstance(value, str):
        return ParameterType.PARAMETER_STRING
    if isinstance(value, tuple | list) and value and all(isinstance(v, str) for v in value):
        return ParameterType.PARAMETER_STRING_ARRAY
    if isinstance(value, tuple | list) and integers:
        return ParameterType.PARAMETER_INTEGER_ARRAY
    if isinstance(value, tuple | list):
        return ParameterType.PARAMETER_DOUBLE_ARRAY
    raise TypeError(f"no ROS parameter type for {value!r}")


def to_parameter_value(value: Any, integers: bool = False) -> Any:
    """A dataclass value as rclpy takes it: tuples as lists, numbers in arrays as floats
    (as ints for a field typed as a sequence of ints, `integers`)."""
    if isinstance(value, tuple | list):
        return [v if isinstance(v, str) else int(v) if integers else float(v) for v in value]
    return value


def from_parameter_value(value: Any, like: Any) -> Any:
    """A parameter value back in the dataclass field's shape (`like`: its current value).
    Arrays come back as lists or, from a parameter file, as array.array: both as tuples."""
    if isinstance(like, tuple) and not isinstance(value, str | bytes):
        return tuple(value)
    return value


def integer_sequence_fields(cls: type) -> set[str]:
    """The fields of dataclass `cls` typed as a tuple or list of ints (joystick axes,
    button indices): integer-array parameters, not double arrays."""
    hints = get_type_hints(cls)
    found = set()
    for item in fields(cls):
        hint = hints.get(item.name)
        arguments = [a for a in get_args(hint) if a is not Ellipsis]
        if get_origin(hint) in (tuple, list) and arguments and all(a is int for a in arguments):
            found.add(item.name)
    return found


def parameter_help_entry(name: str, default: Any, item: Field) -> str:
    """One parameter in a node's `--help`: its name, default and meaning."""
    return f"  {name} = {default}\n      {field_doc(item).doc}"


def parameter_names(prefix: str, instance: Any) -> list[str]:
    return [f"{prefix}{f.name}" for f in fields(instance)]


def _descriptor(name: str, item: Field, value: Any, read_only: bool, integers: bool) -> ParameterDescriptor:
    doc = field_doc(item)
    text = doc.doc + (f" (one of {list(doc.choices)})" if doc.choices else "")
    descriptor = ParameterDescriptor(
        name=name,
        type=_ros_type(value, integers),
        description=text,
        read_only=read_only,
        additional_constraints="" if read_only else "changes take effect at once",
    )
    if doc.low is not None or doc.high is not None:
        if isinstance(value, float):
            descriptor.floating_point_range = [
                FloatingPointRange(
                    from_value=float(doc.low if doc.low is not None else -sys.float_info.max),
                    to_value=float(doc.high if doc.high is not None else sys.float_info.max),
                    step=0.0,
                )
            ]
        elif isinstance(value, int) and not isinstance(value, bool):
            descriptor.integer_range = [
                IntegerRange(
                    from_value=int(doc.low if doc.low is not None else -_INT_MAX),
                    to_value=int(doc.high if doc.high is not None else _INT_MAX),
                    step=1,
                )
            ]
    return descriptor


def declare_dataclass(node: Node, prefix: str, defaults: Any, read_only: bool) -> Any:
    """Declare one parameter per field of the dataclass instance `defaults` (named
    prefix + field name), and return the instance rebuilt from the values in force
    (overrides from launch files, parameter files and the command line included).
    Raises ParameterError naming the parameter for a wrong type, a value out of range,
    a value not among the field's choices, or one the dataclass refuses."""
    assert is_dataclass(defaults)
    values: dict[str, Any] = {}
    integer_sequences = integer_sequence_fields(type(defaults))
    for item in fields(defaults):
        name = f"{prefix}{item.name}"
        default = getattr(defaults, item.name)
        if isinstance(default, float | int) and not isinstance(default, bool) and isinstance(item.default, float):
            default = float(default)  # a float field given an int in YAML stays a double parameter
        integers = item.name in integer_sequences
        try:
            node.declare_parameter(
                name, to_parameter_value(default, integers), _descriptor(name, item, default, read_only, integers)
            )
        except InvalidParameterTypeException as error:
            raise ParameterError(
                f"parameter {name!r} must be of the type of its default {default!r} "
                f"(write 1.0, not 1, for a double): {error}"
            ) from error
        except InvalidParameterValueException as error:
            doc = field_doc(item)
            bounds = [f">= {doc.low}"] * (doc.low is not None) + [f"<= {doc.high}"] * (doc.high is not None)
            raise ParameterError(
                f"parameter {name!r} is out of range: it must be {' and '.join(bounds) or 'valid'} ({doc.doc})"
            ) from error
        value = from_parameter_value(node.get_parameter(name).value, default)
        choices = field_doc(item).choices
        if choices and value not in choices:
            raise ParameterError(f"parameter {name!r} must be one of {list(choices)}, got {value!r}")
        values[item.name] = value
    try:
        return replace(defaults, **values)
    except (TypeError, ValueError) as error:
        raise ParameterError(f"parameters {prefix}*: {error}") from error


def updated_dataclass(current: Any, prefix: str, changes: dict[str, Any]) -> Any:
    """`current` with the parameters in `changes` (full names) applied; raises
    ParameterError (the dataclass's own validation message) when the result is invalid."""
    known = {f.name: f for f in fields(current)}
    values = {}
    for name, value in changes.items():
        field_name = name[len(prefix) :]
        choices = field_doc(known[field_name]).choices
        converted = from_parameter_value(value, getattr(current, field_name))
        if choices and converted not in choices:
            raise ParameterError(f"parameter {name!r} must be one of {list(choices)}, got {converted!r}")
        values[field_name] = converted
    try:
        return replace(current, **values)
    except (TypeError, ValueError) as error:
        raise ParameterError(str(error)) from error
