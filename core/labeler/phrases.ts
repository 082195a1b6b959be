/**
 * Mention phrases per observation and the cue lists the clause rules use. This file is longer than 400 lines because
 * it is data: one phrase list per observation, kept together so a reviewer sees every rule of an observation at once.
 *
 * Started from the CheXpert labeler's mention / unmention lists (MIT, Stanford ML Group; see NOTICE.md and
 * CHEXPERT-LABELER-LICENSE beside this file), rewritten as regular
 * expressions and extended for how IU reports are written. CheXpert's negation and uncertainty rules are
 * Semgrex patterns over a dependency parse; here they are clause-scoped cue lists instead.
 */
import type { Observation } from './labels.ts';

export interface MentionRule {
  /** Phrases that mention the observation. */
  mention: RegExp;
  /** Phrases that look like a mention but are not (matched on the same clause, overlapping the mention). */
  unmention?: RegExp;
  /**
   * A neutral anatomical mention ("heart size", "mediastinal contour") only counts as positive when the clause
   * also says it is abnormal; otherwise it is negative if called normal, and not mentioned if neither.
   */
  needsAbnormal?: RegExp;
}

const w = (alternatives: string[]): RegExp => new RegExp(`\\b(?:${alternatives.join('|')})`, 'g');

export const ENLARGED =
  /\b(?:enlarg\w*|large|larger|increas\w*|widen\w*|prominen\w*|cardiomegaly|borderline|top(?:s)? (?:of )?normal|upper limits? of normal|upper normal|high normal|mildly enlarged|globular|accentuat\w*|dilat\w*)/;

export const MENTIONS: Record<Exclude<Observation, 'No Finding'>, MentionRule[]> = {
  'Enlarged Cardiomediastinum': [
    {
      mention: w([
        'cardiomediastinal enlargement',
        'mediastinal widening',
        'widened mediastinum',
        'widening of the mediastinum',
        'enlarged cardiomediastinal',
        'mediastinal (?:lipomatosis|mass)',
        'mediastinal fat',
      ]),
    },
    {
      mention: w(['mediastin\\w*', 'cardiomediastin\\w*', 'hilar contours?', 'hila\\b', 'paratracheal']),
      needsAbnormal: /\b(?:widen\w*|enlarg\w*|prominen\w*|increas\w*|fullness|bulg\w*)/,
    },
  ],
  Cardiomegaly: [
    {
      mention: w([
        'cardiomegaly',
        'cardiac enlargement',
        'enlarged heart',
        'enlarged cardiac',
        'heart (?:is|appears) enlarged',
        'megaly of the heart',
      ]),
    },
    {
      mention: w(['heart', 'cardiac (?:size|shadow|contours?|silhouette)', 'cardiac', 'cardiothoracic ratio']),
      unmention: /\b(?:heart failure|cardiac (?:pacer|pacemaker|device|monitor\w*|lead|valve|surgery|defib\w*)|heart valve)/,
      needsAbnormal: ENLARGED,
    },
  ],
  'Lung Lesion': [
    {
      mention: w([
        'mass(?:es)?\\b',
        'nodul\\w*',
        'nodular densit\\w*',
        'nodular opacit\\w*',
        'lump',
        'cavitary lesion',
        'cavitation',
        'cavity',
        'carcinoma',
        'neoplasm',
        'tumou?r',
        'malignan\\w*',
        'metasta\\w*',
        'lesions?\\b',
      ]),
      unmention: /\b(?:calcified (?:nodul\w*|granulom\w*|lesion)|calcified lymph|massive|massengale|granulomatous (?:nodul\w*)|nipple)/,
    },
  ],
  'Lung Opacity': [
    {
      mention: w([
        'opacit\\w*',
        'opacification',
        'opacified',
        'decreased translucency',
        'increased density',
        'densit(?:y|ies)',
        'air[- ]?space (?:disease|opacit\\w*|process|consolidation)',
        'infiltrat\\w*',
        'interstitial (?:marking|pattern|lung|opacit|prominence|thickening|disease|process|change|edema|fibrosis)\\w*',
        'reticula\\w*',
        'reticulonodular',
        'parenchymal scar\\w*',
        'peribronchial (?:thickening|cuffing)',
        'scar\\w*',
        'fibros[ie]s',
        'fibrotic',
        'haz(?:e|y|iness)',
        'streaky',
        'lung markings',
        'bronchovascular markings',
        '(?:increased|prominent|coarse\\w*|chronic) (?:\\w+ )?markings',
        'airspace disease',
        'ground[- ]glass',
        'cicatri\\w*',
      ]),
      unmention:
        /\b(?:pleural scar\w*|pleural-parenchymal|bone densit\w*|bony densit\w*|soft tissue densit\w*|nipple|density of the (?:bones|spine)|calcified|granulom\w*|breast tissue|osseous densit\w*)/,
    },
  ],
  Edema: [
    {
      mention: w([
        'edema',
        'oedema',
        'heart failure',
        'chf',
        'vascular congestion',
        'pulmonary congestion',
        'congestive',
        'congestion',
        'cephalization',
        'kerley',
        'pulmonary venous hypertension',
        'vascular (?:prominence|engorgement|indistinctness)',
        'indistinct\\w* (?:pulmonary )?vascula\\w*',
      ]),
    },
    {
      mention: w(['pulmonary vascula\\w*', 'vascular markings', 'vascularity']),
      needsAbnormal: /\b(?:prominen\w*|engorg\w*|increas\w*|congest\w*|indistinct\w*|cephaliz\w*|redistribut\w*)/,
    },
  ],
  Consolidation: [{ mention: w(['consolidat\\w*']) }],
  Pneumonia: [
    {
      mention: w(['pneumonia\\w*', 'pneumonic', 'pneumonitis', 'infection', 'infectious', 'bronchopneumonia', 'aspiration']),
      unmention: /\b(?:(?:granulomatous|prior|previous|old|remote|healed|chronic) (?:\w+ )?(?:infection|infectious|disease)|tuberculosis)/,
    },
  ],
  Atelectasis: [
    {
      mention: w([
        'atelecta\\w*',
        'collapse',
        'volume loss',
        'loss of volume',
        'hypoventilat\\w*',
        'subsegmental',
        'discoid',
        'platelike',
        'plate-like',
      ]),
      unmention: /\b(?:vertebral body collapse|collapse of the (?:\w+ )?vertebra\w*|compression|vertebral)/,
    },
  ],
  Pneumothorax: [{ mention: w(['pneumothora\\w*', 'hydropneumothorax', 'hemopneumothorax']) }],
  'Pleural Effusion': [
    {
      mention: w([
        'pleural effusions?',
        'pleural fluid',
        'effusions?',
        'hydrothorax',
        'hydropneumothorax',
        'hemothorax',
        'fluid in the (?:\\w+ )?(?:fissure|pleural)',
        'blunt\\w*',
        'meniscus',
      ]),
      unmention: /\b(?:pericardial effusion|joint effusion)/,
    },
  ],
  'Pleural Other': [
    {
      mention: w([
        'pleural thickening',
        'thickening of the pleura',
        'pleural (?:\\w+ )?(?:thickening|scar\\w*|plaque\\w*|calcification\\w*)',
        'fibrothorax',
        'pleuro-?parenchymal (?:scar\\w*|thickening)',
        'pleural-parenchymal (?:scar\\w*|thickening)',
        'pleuro-pericardial scar',
        'apical (?:pleural )?(?:thickening|capping|cap)',
        'pleural based',
        'pleural-based',
      ]),
    },
  ],
  Fracture: [{ mention: w(['fractur\\w*', 'fx', 'broken']) }],
  'Support Devices': [
    {
      mention: w([
        'pacer',
        'pacemaker',
        'picc',
        'tubes?\\b',
        'valve replacement',
        'prosthetic valve',
        'valves?\\b',
        'catheters?',
        'hardware',
        'arthroplast\\w*',
        'icd',
        'defibrillator',
        'aicd',
        'devices?',
        'drains?',
        'plates?\\b',
        'screws?',
        'cannula',
        'apparatus',
        'coils?',
        'stents?',
        'mediport',
        'port-a-cath',
        'port\\b',
        'central (?:venous )?line',
        '(?:venous|arterial|central|swan|jugular|subclavian|picc|port) (?:\\w+ )?lines?',
        '(?:pacer|pacemaker|pacing|aicd|icd|defibrillator) (?:\\w+ )?(?:leads?|wires?)',
        'sutures?',
        'staples?',
        'surgical (?:clip|suture|material|hardware)\\w*',
        'prosthe\\w*',
        'implant\\w*',
        'generator',
        'fixation',
        'fusion hardware',
        'rods?\\b',
        'endotracheal',
        'tracheostomy',
        'nasogastric',
        'ng tube',
        'et tube',
        'chest tube',
        'kyphoplasty',
        'vertebroplasty',
        'cement',
        'anchor',
        'loop recorder',
      ]),
      unmention:
        /\b(?:line of|lines? of|midline shift|pleural line|skin ?fold line|costophrenic|septal lines|kerley|lead(?:s|ing)? to|monitoring|leading|plate-?like|plate atelect\w*|discoid|tubular|tube feeding|ports?\s+(?:of|view)|portable|vascular (?:clip|stent)(?!\w)|oblique lines?|linear|interstitial lines)/,
    },
  ],
};

/**
 * Abnormal findings outside the 13 observations. A positive one rules out "No Finding" (IU's "normal" MeSH label
 * is given only to reports with no indexed finding at all). From CheXpert's no_finding list, extended.
 */
export const OTHER_ABNORMAL = w([
  'emphysema\\w*',
  'copd',
  'chronic obstructive',
  'hyperinflat\\w*',
  'hyperexpan\\w*',
  'overinflat\\w*',
  'hyperlucen\\w*',
  'flattening of the (?:hemi)?diaphragm\\w*',
  'flattened (?:hemi)?diaphragm\\w*',
  'granulom\\w*',
  'calcifi\\w*',
  'calcinosis',
  'histoplasm\\w*',
  'tubercul\\w*',
  'spondylo\\w*',
  'degenerat\\w*',
  'osteophyt\\w*',
  'scoliosis',
  'kyphosis',
  'kyphotic',
  'dextroscoliosis',
  'levoscoliosis',
  'curvature',
  'arthrit\\w*',
  'arthropathy',
  'osteopen\\w*',
  'osteopor\\w*',
  'demineraliz\\w*',
  'osteoarthrit\\w*',
  'dish\\b',
  'hyperosto\\w*',
  'sclero\\w*',
  'lytic',
  'blastic',
  'deformit\\w*',
  'compression',
  'wedg\\w*',
  'height loss',
  'loss of height',
  'schmorl',
  'tortuous',
  'tortuosity',
  'ectatic',
  'ectasia',
  'unfold\\w*',
  'aneurysm\\w*',
  'atheroscl\\w*',
  'atherosclero\\w*',
  'aortic (?:knob )?calcif\\w*',
  'dilated aorta',
  'aortic dilat\\w*',
  'hernia',
  'eventration',
  'elevat\\w*',
  'hemidiaphragm (?:is |are )?(?:elevated|higher)',
  'bronchiectasis',
  'bronchitis',
  'bronchiolitis',
  'airway\\w* disease',
  'bronchial wall thickening',
  'peribronchial',
  'bullae',
  'bulla\\b',
  'blebs?',
  'cysts?\\b',
  'cystic',
  'thickening',
  'plaque\\w*',
  'cuffing',
  'lucenc\\w*',
  'pneumomediastinum',
  'pneumoperitoneum',
  'free air',
  'subcutaneous (?:emphysema|air|gas)',
  'hypertension',
  'contusion',
  'hemorrhage',
  'hematoma',
  'foreign bod\\w*',
  'bullet',
  'shrapnel',
  'radiopaque',
  'metallic',
  'post[- ]?surgical',
  'postoperative',
  'post-operative',
  'surgical changes',
  'resection',
  'lobectomy',
  'pneumonectomy',
  'mastectomy',
  'cholecystectomy',
  'thoracotomy',
  'sternotomy',
  'cabg',
  'clips?\\b',
  'azygos lobe',
  'nipple shadow',
  'pectus',
  'cervical rib',
  'bifid rib',
  'shift',
  'deviation',
  'displace\\w*',
  'epicardial fat',
  'fat pad',
  'lipoma\\w*',
  'goiter',
  'thyroid',
  'hiatal',
  'distension',
  'distended',
  'dilated bowel',
  'pericardial effusion',
  'thoracentesis',
  'aspiration',
  'cephalization',
  'lymphadenopathy',
  'adenopathy',
  'hilar enlarg\\w*',
  'hilar prominence',
  'chronic changes',
  'chronic lung disease',
  'chronic interstitial',
  'old (?:healed )?(?:rib )?(?:fracture|injury)',
  'healed',
  'abnormal\\w*',
  'volume loss',
]);

/** Cues before a mention (within the clause) that negate it. */
export const PRE_NEGATION =
  /\b(?:no|not|without|negative for|free of|clear of|absence of|absent|resolution of|resolved|removal of|removed|interval removal|never|nor|neither|rather than|ruled out|rules out|no evidence of|no signs? of|no radiographic evidence|no suspicious|no definite|nothing to suggest|exclude[sd]?|cleared)\b/;

/**
 * "No (significant) change in X", "no interval increase in X", "without change of X": the negation governs the change,
 * not X, which is still there (a follow-up film reporting a persisting finding). Cut from what precedes a mention
 * before the negation cues are read.
 */
export const NO_CHANGE_IN =
  /\b(?:no|without)\s+(?:(?:significant|interval|appreciable|definite|substantial|apparent|marked|other|further|major|notable|radiographic)\s+){0,2}(?:change|changes|increase|decrease|progression|worsening|improvement|enlargement)\s+(?:in|of)\b/g;

/** Normality words that negate only the noun phrase right after them ("normal heart size", "clear lungs"). */
export const NEAR_PRE_NEGATION = /\b(?:normal|unremarkable|clear|within normal limits)\s+(?:[\w-]+\s+){0,2}$/;

/** Negated uncertainty ("cannot exclude X", "X is not excluded"): uncertain, and checked before plain negation. */
export const NEGATED_UNCERTAINTY = /\b(?:cannot|can not|can't|could not|not)\s+(?:be\s+)?(?:exclude[sd]?|rule[sd]? out|ruled out)\b/;

/** Cues after a mention (within the clause) that negate it. */
export const POST_NEGATION =
  /\b(?:(?:is|are|was|were|has been|have been)\s+(?:not\s+|no longer\s+)(?:seen|identified|present|visualized|demonstrated|evident|appreciated|noted|detected|apparent)|not (?:seen|identified|present|visualized|demonstrated|evident|appreciated|noted|detected|apparent)|(?:has|have)?\s*resolved|resolution|absent|(?:has|have) been removed|removed|no longer (?:seen|present|visualized|identified|evident|apparent)|(?:is|are|appears?|remains?|appear) (?:\w+ )?(?:normal|unremarkable|clear|negative|within normal limits|stable and normal)|within normal limits|within (?:the )?limits of normal|within (?:the )?normal range|(?:is|are) free|ruled out|excluded|not significantly|not enlarged|normal in size|of normal size|normal size|not increased|negative)\b/;

/** Cues before a mention that make it uncertain (checked before negation: "cannot exclude X" is uncertain). */
export const PRE_UNCERTAINTY =
  /\b(?:evaluat(?:ion|e|ed) for|assess(?:ment|ed)? for|may|might|could|possibl[ey]|unlikely|questionabl[ey]|question of|suspicious|suspect\w*|concern(?:ing)? for|cannot (?:be )?(?:exclude|excluded|rule out|ruled out)|can not (?:be )?(?:exclude|excluded|rule out|ruled out)|can't exclude|not (?:be )?excluded|not ruled out|versus|vs|or\b(?= (?:early|developing|\w+ )?(?:pneumonia|atelectasis|consolidation|infiltrate|scar))|differential|consider\w*|equivocal|indeterminate|uncertain|worrisome|perhaps|nonspecific|non-specific)\b/;

/** Cues after a mention that make it uncertain. */
export const POST_UNCERTAINTY =
  /\b(?:(?:is|are) (?:not|n't) excluded|cannot be (?:excluded|ruled out)|can not be (?:excluded|ruled out)|not (?:be )?excluded|is possible|are possible|(?:may|might|could) (?:be|have) (?:present|seen|noted|identified|developing|forming)|is (?:suspected|questioned)|versus|vs|or (?:\w+ )?(?:atelectasis|scar\w*|pneumonia|infiltrate|consolidation|effusion|edema)|not (?:entirely )?ruled out|questionable|suspected|uncertain|indeterminate|equivocal)\b/;

/** Words that, right before a mention, say "normal X" (negative for neutral anatomical mentions). */
export const NORMAL_WORDS =
  /\b(?:normal|unremarkable|within normal limits|stable|unchanged|normal-sized|normal sized|not enlarged|clear|negative)\b/;

/** Whole-sentence patterns that state a normal study: they set "No Finding" when nothing else is positive. */
export const NORMAL_STUDY =
  /\b(?:no acute (?:cardiopulmonary|intrathoracic|pulmonary|cardiac|osseous|chest|radiographic|disease|findings?|abnormalit|process)|normal (?:chest|study|exam|radiograph|x-?ray)|no (?:active|significant|acute) (?:disease|abnormalit\w*|process|findings?)|negative (?:chest|study|exam)|no radiographic evidence of (?:acute )?(?:cardiopulmonary )?disease|clear lungs|lungs are clear|no evidence of (?:active|acute) disease|unremarkable (?:chest|study|exam))/;
