"""The cohort's medical knowledge base: 20 conditions, each with a typical symptom, a first-line drug, a key
test and a contraindication of that drug.

This is *general* knowledge: every patient with a condition shares it, and the model learns it from many
sentences. Each attribute's values are distinct across conditions, so a multiple-choice question's options can be
drawn from the attribute's value set without two correct answers.
"""

from __future__ import annotations

# condition: (symptom, first-line drug, key test, contraindication of the first-line drug)
CONDITIONS: dict[str, tuple[str, str, str, str]] = {
    "type 2 diabetes": ("excessive thirst", "metformin", "HbA1c", "severe renal impairment"),
    "hypertension": ("morning headache", "lisinopril", "serum potassium", "a history of angioedema"),
    "asthma": ("wheezing", "albuterol", "peak flow measurement", "tachyarrhythmia"),
    "hypothyroidism": ("cold intolerance", "levothyroxine", "TSH level", "untreated adrenal insufficiency"),
    "gout": ("a swollen big toe", "colchicine", "serum uric acid", "severe hepatic impairment"),
    "pneumonia": ("productive cough", "amoxicillin", "sputum culture", "penicillin allergy"),
    "migraine": ("throbbing headache", "sumatriptan", "neurological examination", "coronary artery disease"),
    "atrial fibrillation": ("palpitations", "apixaban", "electrocardiogram", "active bleeding"),
    "heart failure": ("ankle swelling", "furosemide", "BNP level", "anuria"),
    "COPD": ("breathlessness on exertion", "tiotropium", "spirometry", "narrow-angle glaucoma"),
    "iron deficiency anemia": ("pale skin", "ferrous sulfate", "serum ferritin", "hemochromatosis"),
    "urinary tract infection": ("burning urination", "nitrofurantoin", "urine culture",
                                "creatinine clearance below 30"),
    "rheumatoid arthritis": ("morning joint stiffness", "methotrexate", "rheumatoid factor", "pregnancy"),
    "major depression": ("persistent low mood", "sertraline", "PHQ-9 score", "MAO inhibitor use"),
    "epilepsy": ("recurrent seizures", "levetiracetam", "EEG", "severe behavioural disorder"),
    "peptic ulcer": ("burning epigastric pain", "omeprazole", "Helicobacter pylori test", "rilpivirine therapy"),
    "hyperlipidemia": ("yellow skin deposits", "atorvastatin", "lipid panel", "active liver disease"),
    "osteoporosis": ("a fragility fracture", "alendronate", "DEXA scan", "esophageal stricture"),
    "Parkinson disease": ("resting tremor", "levodopa", "DaT scan", "a history of melanoma"),
    "Lyme disease": ("a bullseye rash", "doxycycline", "Borrelia serology", "age under eight"),
}

KB_ATTRIBUTES = ("symptom", "first_line_drug", "key_test", "contraindication")

# Dose strengths (mg) per first-line drug; a patient's dose is "<drug> <mg> mg <frequency>".
DOSE_MG: dict[str, tuple[int, ...]] = {
    "metformin": (500, 850, 1000), "lisinopril": (5, 10, 20), "albuterol": (90, 180), "levothyroxine": (25, 50, 75),
    "colchicine": (0.5, 0.6), "amoxicillin": (500, 875), "sumatriptan": (25, 50, 100), "apixaban": (2.5, 5),
    "furosemide": (20, 40, 80), "tiotropium": (2.5, 18), "ferrous sulfate": (325, 65), "nitrofurantoin": (50, 100),
    "methotrexate": (7.5, 15, 20), "sertraline": (25, 50, 100), "levetiracetam": (250, 500, 1000),
    "omeprazole": (20, 40), "atorvastatin": (10, 20, 40), "alendronate": (35, 70), "levodopa": (100, 250),
    "doxycycline": (100, 200),
}
FREQUENCIES = ("once daily", "twice daily", "three times daily")


def condition_attribute(condition: str, attribute: str) -> str:
    """The value of one knowledge-base attribute of a condition."""
    return CONDITIONS[condition][KB_ATTRIBUTES.index(attribute)]


def doses_of(drug: str) -> list[str]:
    """Every dose string the cohort can prescribe for ``drug`` (the value set of the ``dose`` attribute)."""
    return [f"{drug} {mg:g} mg {freq}" for mg in DOSE_MG[drug] for freq in FREQUENCIES]
