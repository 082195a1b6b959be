/**
 * Examples for the OpenAPI document, recorded from real answers of `npm start` (shipped model, sample index) and
 * shortened: what an integrator sees in the API reference is what the server says.
 */
export const EXAMPLES = {
  health: {
    status: 'ok',
    model: { name: 'medclip-tiny', sha256: '1b09cbad179e9699d53556bdf5ced746e3ad17b15e13818aae5fd0212e6e8380', embedDim: 128 },
    index: { version: 6, images: 200, reports: 297, sentences: 1678 },
  },
  facets: {
    images: 200,
    views: [
      { value: 'AP(PEDIATRIC)', count: 86 },
      { value: 'AP', count: 68 },
      { value: 'PA', count: 46 },
    ],
    sources: [
      { value: 'nih', count: 114 },
      { value: 'kermany', count: 86 },
    ],
    findings: [
      { name: 'Pneumonia', count: 106 },
      { name: 'No Finding', count: 94 },
      { name: 'Pleural Effusion', count: 18 },
      { name: 'Pneumothorax', count: 3 },
    ],
  },
  textSearch: {
    target: 'reports',
    query: { findings: [{ name: 'Pleural Effusion', polarity: 'positive' }] },
    hits: [
      {
        id: '372',
        score: 0.999,
        relevance: 0.981,
        labels: { 'No Finding': 0, 'Lung Opacity': 1, Atelectasis: -1, 'Pleural Effusion': 1, 'Support Devices': 1 },
        matched: ['Pleural Effusion'],
        sentence: { index: 4, text: 'Small left pleural effusion.', reports: 1 },
        collapsed: [],
        report: {
          findings:
            'Left retrocardiac airspace disease with blunted posterior costophrenic XXXX on lateral view suggesting small pleural effusion. Normal heart size.',
          impression: 'Small left pleural effusion.',
        },
      },
    ],
    tookMs: 6.9,
  },
  imageSearch: {
    target: 'images',
    query: { findings: [{ name: 'No Finding', polarity: 'positive', validated: true, auc: 0.905 }] },
    hits: [
      {
        id: 'images/nih/00001303_001.png',
        score: 1,
        labels: { 'No Finding': 1, Pneumonia: 0 },
        matched: ['No Finding'],
        view: 'AP',
        source: 'nih',
        thumbnail: '/v1/images/images%2Fnih%2F00001303_001.png',
      },
      {
        id: 'images/kermany/x/IM-0193-0001.jpg',
        score: 0.971,
        labels: { 'No Finding': 1, Pneumonia: 0 },
        matched: ['No Finding'],
        source: 'kermany',
        thumbnail: '/v1/images/images%2Fkermany%2Fx%2FIM-0193-0001.jpg',
      },
    ],
    tookMs: 30.8,
  },
  classify: {
    mode: 'findings',
    classes: [
      { name: 'No Finding', probability: 0.368, validated: true, auc: 0.905 },
      { name: 'Edema', probability: 0.989, validated: true, auc: 0.819 },
      { name: 'Pneumonia', probability: 0.994, validated: false, auc: 0.678 },
    ],
    tookMs: 10.7,
  },
  problem: {
    type: 'https://medclip-search.dev/problems/bad-request',
    title: 'Invalid request',
    status: 400,
    detail: 'k: Too big: expected number to be <=100',
    instance: '/v1/search/text',
    requestId: '0f8fad5b-d9cb-469f-a165-70867728950e',
  },
};
