"""Topology parameters for a kernel bond, derived from the option vocabulary.

A topology whose hosts have a bond declares its ``Params`` as a subclass of
:class:`BondParams`, with the bond options it lets a scenario set as fields named as the
kernel names them (``miimon: int = 100``, ``lacp_rate: str = "fast"``) and the mode as
``bond_mode``. Every such field, defaults included, is checked and converted by the
vocabulary itself (:data:`~harness.tech.bond.options.OPTIONS`): its values and limits are
the kernel's, written once, and ``--param miimon=100`` or ``lacp_rate=1`` strings work as
they do in a YAML file. A topology narrows the vocabulary only explicitly, with a class
variable that says why: :attr:`BondParams.supported_modes`,
:attr:`BondParams.needs_mii_monitor`.

Options are checked one by one here; how they go together (delays in miimon periods, a
primary among the members, one link monitor) is checked once per bond, where the topology
declares it (``Topology.add_bond``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator, model_validator

from harness.errors import ConfigError
from harness.tech.bond.options import BOND_MODES, OPTIONS, mode_name, option_value


class BondParams(BaseModel):
    """Parameters whose names are kernel bond options (and ``bond_mode``) take the kernel's
    values; other fields (cable counts, rates, a switch's options) are left alone."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    # The modes the topology's cabling works with; a subclass that narrows them says why.
    supported_modes: ClassVar[tuple[str, ...]] = BOND_MODES
    # Where the topology offers no ARP monitor, miimon=0 would leave the bond without any
    # link monitor: a cut member would never be noticed.
    needs_mii_monitor: ClassVar[bool] = False

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        unknown = [m for m in cls.supported_modes if m not in BOND_MODES]
        if unknown:  # a typo in a topology, caught when it is loaded
            raise TypeError(f"{cls.__qualname__}.supported_modes: {', '.join(unknown)} is not"
                            f" a kernel bond mode ({', '.join(BOND_MODES)})")

    @field_validator("*", mode="before")
    @classmethod
    def _kernel_value(cls, value: Any, info: ValidationInfo) -> Any:
        name = info.field_name
        if value is None or name not in ("bond_mode", *OPTIONS):
            return value
        try:
            if name == "bond_mode":
                return cls._narrowed(mode_name(value))
            # The members are the topology's business: add_bond checks a primary.
            return cls._narrowed(option_value(name, value), name)
        except ConfigError as exc:
            raise ValueError(f"{exc.problem}; {exc.fix}") from None

    @classmethod
    def _narrowed(cls, value: Any, option: str = "mode") -> Any:
        """``value`` (checked by the vocabulary) if this topology's restrictions allow it."""
        if option == "mode" and value not in cls.supported_modes:
            raise ConfigError(f"bond mode {value} does not suit this topology",
                              "use one of " + ", ".join(cls.supported_modes))
        if option == "miimon" and cls.needs_mii_monitor and value == 0:
            raise ConfigError("miimon=0 turns off the only link monitor this topology's"
                              " bond has", "give a period in ms, such as 100")
        return value

    @model_validator(mode="after")
    def _one_link_monitor(self) -> BondParams:
        # The kernel runs one link monitor: asking for the ARP monitor without naming
        # miimon turns MII monitoring off.
        if ("miimon" in type(self).model_fields and getattr(self, "arp_interval", None)
                and "miimon" not in self.model_fields_set):
            self.miimon = 0  # type: ignore[attr-defined]
        return self

    def bond_options(self, members: Sequence[str] = ()) -> dict[str, Any]:
        """The bond's options as ``Topology.add_bond`` takes them: ``mode`` and every kernel
        option among these parameters that is set (None: the kernel's default stands).
        ``members``: the bond's, for a subclass that derives options from them."""
        asked = {key: getattr(self, key) for key in OPTIONS if key in type(self).model_fields}
        mode = getattr(self, "bond_mode", None)
        return {**({"mode": mode} if mode is not None else {}),
                **{key: value for key, value in asked.items() if value is not None}}
