// FacetMasking: Synthetic masks: templates, placement from landmarks, types, colours.
