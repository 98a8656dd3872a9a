// FacetEval: LFW protocol, verification and identification metrics, fairness, HTML/SVG report.
