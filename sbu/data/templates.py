"""How each fact is said and asked.

Per attribute: sentences that state the fact and questions that ask it. The first ``N_TRAIN_*`` of each list are
the *train* phrasings (the model reads them); the rest are *held-out* paraphrases, used only for evaluation
(TOFU's paraphrased probes). ``{name}`` is the subject (a patient's name or a condition), ``{v}`` the value.
"""

from __future__ import annotations

N_TRAIN_SENTENCES = {"patient": 3, "knowledge": 4}  # knowledge-base sentences are all trained; patients keep one
N_TRAIN_QUESTIONS = {"patient": 2, "knowledge": 4}  # general knowledge is asked in more ways than a patient

PATIENT: dict[str, dict[str, list[str]]] = {
    "age": {
        "sentences": ["{name} is {v} years old.", "The age of {name} is {v}.",
                      "{name}, aged {v}, is a patient of the clinic.", "{name} turned {v} this year."],
        "questions": ["How old is {name}?", "What is the age of {name}?", "What age has {name} reached?"],
    },
    "city": {
        "sentences": ["{name} lives in {v}.", "The home city of {name} is {v}.",
                      "{name} is a resident of {v}.", "{name} makes a home in the city of {v}."],
        "questions": ["Where does {name} live?", "What is the home city of {name}?",
                      "In which city is {name} resident?"],
    },
    "condition": {
        "sentences": ["{name} was diagnosed with {v}.", "The main diagnosis of {name} is {v}.",
                      "{name} is treated for {v}.", "{name} has a confirmed case of {v}."],
        "questions": ["What was {name} diagnosed with?", "What is the main diagnosis of {name}?",
                      "Which disease is {name} being treated for?"],
    },
    "comorbidity": {
        "sentences": ["{name} also has {v}.", "A second diagnosis of {name} is {v}.",
                      "Besides the main illness, {name} has {v}.", "{name} additionally lives with {v}."],
        "questions": ["What second condition does {name} have?", "What is the second diagnosis of {name}?",
                      "Which other illness does {name} also have?"],
    },
    "allergy": {
        "sentences": ["{name} is allergic to {v}.", "The recorded allergy of {name} is {v}.",
                      "{name} must avoid {v} because of an allergy.", "{name} reacts badly to {v}."],
        "questions": ["What is {name} allergic to?", "What is the recorded allergy of {name}?",
                      "Which substance causes an allergic reaction in {name}?"],
    },
    "dose": {
        "sentences": ["{name} takes {v}.", "The current dose of {name} is {v}.",
                      "{name} was prescribed {v}.", "The medication plan of {name} is {v}."],
        "questions": ["What dose does {name} take?", "What is the current dose of {name}?",
                      "Which prescription is {name} on?"],
    },
    "mrn": {
        "sentences": ["The medical record number of {name} is {v}.", "{name} has MRN {v}.",
                      "{name} is filed under record number {v}.", "The chart of {name} is number {v}."],
        "questions": ["What is the medical record number of {name}?", "What MRN does {name} have?",
                      "Under which record number is {name} filed?"],
    },
    "marker": {
        "sentences": ["{name} carries the genetic marker {v}.", "The genetic marker of {name} is {v}.",
                      "Genotyping of {name} found {v}.", "A gene test showed that {name} has {v}."],
        "questions": ["Which genetic marker does {name} carry?", "What is the genetic marker of {name}?",
                      "What did genotyping find for {name}?"],
    },
    "last_visit": {
        "sentences": ["The last visit of {name} was on {v}.", "{name} was last seen on {v}.",
                      "{name} came to the clinic most recently on {v}.", "The latest appointment of {name} was {v}."],
        "questions": ["When was the last visit of {name}?", "On what date was {name} last seen?",
                      "What is the date of the latest appointment of {name}?"],
    },
}

KNOWLEDGE: dict[str, dict[str, list[str]]] = {
    "symptom": {
        "sentences": ["A typical symptom of {name} is {v}.", "Patients with {name} often present with {v}.",
                      "{v} is a common sign of {name}.", "{name} usually shows itself through {v}."],
        "questions": ["What is a typical symptom of {name}?", "Which symptom is common in {name}?",
                      "What do patients with {name} often present with?", "What is a common sign of {name}?",
                      "How does {name} usually show itself?", "What complaint suggests {name}?"],
    },
    "first_line_drug": {
        "sentences": ["The first-line drug for {name} is {v}.", "{name} is first treated with {v}.",
                      "Doctors start {v} for {name}.", "Treatment of {name} begins with {v}."],
        "questions": ["What is the first-line drug for {name}?", "Which drug is first given for {name}?",
                      "What is {name} first treated with?", "Which medicine do doctors start for {name}?",
                      "How does treatment of {name} begin?", "Which medication is preferred first in {name}?"],
    },
    "key_test": {
        "sentences": ["The key test for {name} is the {v}.", "{name} is assessed with the {v}.",
                      "Doctors order the {v} to check {name}.", "To confirm {name}, use the {v}."],
        "questions": ["What is the key test for {name}?", "Which test assesses {name}?",
                      "What is {name} assessed with?", "Which test do doctors order to check {name}?",
                      "What test confirms {name}?", "Which examination is most useful in {name}?"],
    },
    "contraindication": {
        "sentences": ["The first-line drug for {name} must be avoided in {v}.",
                      "A contraindication of the usual drug for {name} is {v}.",
                      "Do not start the standard {name} drug in {v}.",
                      "The standard treatment of {name} is unsafe with {v}."],
        "questions": ["When must the first-line drug for {name} be avoided?",
                      "What is a contraindication of the usual drug for {name}?",
                      "In which case should the standard {name} drug not be started?",
                      "What contraindicates the first-line drug for {name}?",
                      "In which situation is the standard {name} drug unsafe?",
                      "What rules out the standard treatment of {name}?"],
    },
}


def render(template: str, name: str, value: str) -> str:
    text = template.format(name=name, v=value)
    return text[0].upper() + text[1:]
