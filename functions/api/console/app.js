import './api.js';
import './ui.js';
import './charts.js';
import './pages.js';
