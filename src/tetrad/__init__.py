"""tetrad: SkillC, TTRL-Guard, hourglass-free semantic IDs and MTmixAtt as one library."""

__version__ = "0.1.0"
